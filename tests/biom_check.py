#!/usr/bin/python3
"""python3-biom-format's side of tests/test_biom.c: BIOM 2.1 files both ways.

  biom_check.py write OUT.biom SIDECAR [--fixed-ids] [--unsorted] [--no-samples]
      builds a table with biom.Table, writes it with Table.to_hdf5 (what every BIOM 2.1 file in
      the wild comes from) and writes the table it meant to SIDECAR, for the C reader to compare.
      --fixed-ids rewrites both ids datasets as fixed-length byte strings (BIOM 2.0 style);
      --unsorted reverses each sample's entries in sample/matrix (valid: the spec does not order
      them), so the reader's sorting path runs; --no-samples keeps the observations only (biom-format
      then writes sample/ids as an empty float64 dataset).
  biom_check.py check IN.biom SIDECAR
      loads IN (written by fb_biom_write) with biom.load_table and with the format's own validator
      (biom validate-table), and compares ids, shape and every count with SIDECAR, written by the
      C test.

SIDECAR is tab-separated text, one record per line, every value exact:
  shape <n_obs> <n_samples>
  obs <id>                  (n_obs lines, in order)
  sample <id>               (n_samples lines, in order)
  entry <obs> <sample> <value>   (every non-zero; value as repr(float), read back by strtod)
Exit status: 0 all equal, 1 a difference (printed), 77 a module is missing (the C test skips).
"""
import sys

try:
    import h5py
    import numpy as np
    from biom import Table, load_table
    from biom.cli.table_validator import _validate_table
except ImportError as e:
    print(f"SKIP: {e.name} is missing (apt-get install python3-biom-format python3-h5py)")
    sys.exit(77)


def write_sidecar(path, obs_ids, sample_ids, dense):
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"shape\t{len(obs_ids)}\t{len(sample_ids)}\n")
        f.writelines(f"obs\t{i}\n" for i in obs_ids)
        f.writelines(f"sample\t{i}\n" for i in sample_ids)
        for o, s in zip(*np.nonzero(dense)):
            f.write(f"entry\t{o}\t{s}\t{float(dense[o, s])!r}\n")


def read_sidecar(path):
    obs, samples, entries, shape = [], [], [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = line.rstrip("\n").split("\t")
            if rec[0] == "shape":
                shape = (int(rec[1]), int(rec[2]))
            elif rec[0] == "obs":
                obs.append(rec[1])
            elif rec[0] == "sample":
                samples.append(rec[1])
            elif rec[0] == "entry":
                entries.append((int(rec[1]), int(rec[2]), float(rec[3])))
    dense = np.zeros(shape)
    for o, s, v in entries:
        dense[o, s] = v
    return obs, samples, dense


def write(out, sidecar, fixed_ids, unsorted, no_samples):
    # 6 observations x 5 samples: observation O4 and sample S3 are all zero, counts of very
    # different sizes, a fractional one, a 250-base ASV id, a non-ASCII sample id (which
    # biom-format 2.1.12's own from_hdf5 cannot decode; the C reader must).
    asv = "TACGGAGGATGCGAGCGTTATCCGGATTTATTGGGTTTAAAGGGTGCGTAGGCGG" * 4 + "TTTAAGTCAGCGGTCAAATGTCGGGGCTCA"
    obs_ids = ["O1", asv, "O3", "O4", "GG_OTU_5", "O6"]
    sample_ids = ["S1", "S2", "S3", "Säule-4", "sample.5"]
    dense = np.array([
        [5, 0, 0, 1, 2],
        [0, 3, 0, 0, 7],
        [1, 1, 0, 2.5, 0],
        [0, 0, 0, 0, 0],
        [1000000, 0, 0, 4, 1],
        [0, 9, 0, 0, 3],
    ], dtype=float)
    if no_samples:
        sample_ids, dense = [], dense[:, :0]
    table = Table(dense, obs_ids, sample_ids, table_id="biom_check")
    with h5py.File(out, "w") as f:
        table.to_hdf5(f, "tests/biom_check.py")
        if fixed_ids:
            for axis, ids in (("observation", obs_ids), ("sample", sample_ids)):
                del f[f"{axis}/ids"]
                f.create_dataset(f"{axis}/ids", data=np.array([i.encode("utf-8") for i in ids]))
        if unsorted:
            ptr = f["sample/matrix/indptr"][:]
            for name in ("indices", "data"):
                v = f[f"sample/matrix/{name}"][:]
                for s in range(len(ptr) - 1):
                    v[ptr[s]:ptr[s + 1]] = v[ptr[s]:ptr[s + 1]][::-1].copy()
                f[f"sample/matrix/{name}"][:] = v
    write_sidecar(sidecar, obs_ids, sample_ids, dense)
    print(f"biom_check: wrote {out} ({dense.shape[0]} x {dense.shape[1]}, {np.count_nonzero(dense)} non-zeros)")
    return 0


def check(path, sidecar):
    obs, samples, want = read_sidecar(sidecar)
    problems = []
    valid, report = _validate_table(path)
    if not valid:
        problems.append("biom validate-table: " + "; ".join(report))
    table = load_table(path)
    if list(table.ids(axis="observation")) != obs:
        problems.append(f"observation ids {list(table.ids(axis='observation'))[:5]}... != {obs[:5]}...")
    if list(table.ids(axis="sample")) != samples:
        problems.append(f"sample ids {list(table.ids(axis='sample'))[:5]}... != {samples[:5]}...")
    if table.shape != want.shape:
        problems.append(f"shape {table.shape} != {want.shape}")
    else:
        got = table.matrix_data.toarray() if table.shape[0] and table.shape[1] else np.zeros(want.shape)
        diff = np.argwhere(got != want)
        if len(diff):
            o, s = diff[0]
            problems.append(f"{len(diff)} counts differ; first: observation {o}, sample {s}: {got[o, s]!r} != {want[o, s]!r}")
    for p in problems:
        print(f"biom_check: {path}: {p}")
    if not problems:
        print(f"biom_check: {path}: load_table and validate-table agree ({want.shape[0]} x {want.shape[1]}, "
              f"{np.count_nonzero(want)} non-zeros)")
    return 1 if problems else 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "write":
        flags = argv[3:]
        return write(argv[1], argv[2], "--fixed-ids" in flags, "--unsorted" in flags, "--no-samples" in flags)
    if len(argv) == 3 and argv[0] == "check":
        return check(argv[1], argv[2])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
