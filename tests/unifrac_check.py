#!/usr/bin/python3
"""References for tests/test_unifrac.c: scikit-bio and ssu (Striped UniFrac's CLI).

  unifrac_check.py make DIR
      Writes into DIR the cases (BIOM tables by python3-biom-format, Newick trees as text) and, for
      each case and kind, scikit-bio's matrix (skbio_<case>_<kind>.h5) and ssu's
      (ssu_<case>_<kind>_<fp64|fp32>.h5), both in Striped UniFrac's HDF5 layout, plus bad files:
        worked      the worked case of SOURCE-SYSTEMS.md (6 samples, 5 OTUs)
        worked_messy.nwk   its tree with comments, blanks, newlines and quotes (same tree)
        random      50 samples x 200 ASVs (seeded), a random binary tree with lengths %.6f, a
                    quoted tip label with blanks, underscores in the others
        missing.biom      the worked table plus an OTU that is not in the tree
        quote.nwk         the worked tree with a tip label holding a quote
        nocsr.biom        the worked table without observation/matrix
        distances.h5      the worked case's matrix under the source system's key `distances`
        bad_*.h5          non-square, asymmetric, non-zero diagonal, NaN, duplicate id, short order
  unifrac_check.py check FILE REF IDS DTYPE TOL
      Reads FILE (written by fb_unifrac_write) as the source system does (h5py; scikit-bio's
      DistanceMatrix), checks the layout (format, version, order, matrix of DTYPE float32|float64)
      and the ids (comma-separated IDS), and compares with the matrix of REF within TOL.

scikit-bio reads the trees with convert_underscores=False: our tips keep underscores (datasets/newick.h).
"""
import io
import subprocess
import sys

import h5py
import numpy as np

KINDS = ("unweighted", "weighted_normalized", "weighted_unnormalized")

WORKED_TREE = "(GG_OTU_1:1,(GG_OTU_2:1,GG_OTU_3:1):1,(GG_OTU_5:1,GG_OTU_4:1):1);\n"
WORKED_MESSY = ("[the worked case, written untidily]\n( 'GG_OTU_1' : 1 ,\n  (GG_OTU_2:1 [a comment], GG_OTU_3:1.0e0)\n"
                "  inner : 1,\r\n  ( GG_OTU_5 :1, GG_OTU_4: 1 ) : 1 ) ;\n")
WORKED_OTUS = ["GG_OTU_1", "GG_OTU_2", "GG_OTU_3", "GG_OTU_4", "GG_OTU_5"]
WORKED_SAMPLES = ["S1", "S2", "S3", "S4", "S5", "S6"]
WORKED_COUNTS = {  # SOURCE-SYSTEMS.md
    "S1": {"GG_OTU_2": 5, "GG_OTU_4": 2},
    "S2": {"GG_OTU_2": 1, "GG_OTU_4": 1, "GG_OTU_5": 1},
    "S3": {"GG_OTU_1": 1, "GG_OTU_3": 1, "GG_OTU_4": 1, "GG_OTU_5": 1},
    "S4": {"GG_OTU_2": 2, "GG_OTU_3": 4},
    "S5": {"GG_OTU_2": 3},
    "S6": {"GG_OTU_2": 1, "GG_OTU_3": 2, "GG_OTU_4": 1},
}


def write_biom(path, counts, obs_ids, sample_ids):
    """counts: (observations, samples)."""
    import biom
    table = biom.Table(np.asarray(counts, dtype=float), obs_ids, sample_ids)
    with biom.util.biom_open(path, "w") as f:
        table.to_hdf5(f, "fusebench unifrac test")


def write_matrix(path, matrix, ids, key="matrix", dtype=np.float64):
    """Striped UniFrac's layout, as ssu writes it."""
    with h5py.File(path, "w") as f:
        f.create_dataset("format", data=np.array([b"BDSM"], dtype="S4"))
        f.create_dataset("version", data=np.array([b"2020.12"], dtype="S7"))
        f.create_dataset("order", data=np.array(ids, dtype=object), dtype=h5py.string_dtype("ascii"))
        f.create_dataset(key, data=np.asarray(matrix, dtype=dtype))


def random_case(rng, n_samples=50, n_asvs=200):
    names = ["ASV_%03d" % i for i in range(n_asvs)]
    names[-1] = "ASV 199 (odd)"   # quoted in the Newick text
    # A random binary tree: join two random subtrees until one is left.
    nodes = [("'%s'" % n.replace("'", "''")) if " " in n else n for n in names]
    nodes = ["%s:%.6f" % (n, rng.uniform(0.01, 1.0)) for n in nodes]
    k = 0
    while len(nodes) > 1:
        i, j = sorted(rng.choice(len(nodes), 2, replace=False))
        b = nodes.pop(j)
        a = nodes.pop(i)
        label = "n%d" % k if k % 3 == 0 else ""   # some internal labels
        k += 1
        nodes.append("(%s,%s)%s:%.6f" % (a, b, label, rng.uniform(0.01, 1.0)))
    tree = nodes[0].rsplit(":", 1)[0] + ";\n"
    counts = rng.poisson(4.0, size=(n_asvs, n_samples)) * (rng.random((n_asvs, n_samples)) < 0.3)
    for s in range(n_samples):   # every sample has reads
        if counts[:, s].sum() == 0:
            counts[rng.integers(n_asvs), s] = 1
    samples = ["sample.%02d" % s for s in range(n_samples)]
    return counts, names, samples, tree


def skbio_matrix(kind, counts, obs_ids, sample_ids, tree_text):
    from skbio import TreeNode
    from skbio.diversity import beta_diversity
    tree = TreeNode.read(io.StringIO(tree_text), convert_underscores=False)
    # scikit-bio takes a root with more than two children for an unrooted tree and refuses it:
    # gather all but the last under a new node with a zero-length branch (UniFrac unchanged).
    root = tree.root()
    if len(root.children) > 2:
        joined = TreeNode(length=0.0)
        for child in list(root.children[:-1]):
            joined.append(child)
        root.append(joined)
    metric = "unweighted_unifrac" if kind == "unweighted" else "weighted_unifrac"
    extra = {} if kind == "unweighted" else {"normalized": kind == "weighted_normalized"}
    dm = beta_diversity(metric, np.asarray(counts).T.astype(int), ids=sample_ids, tree=tree, otu_ids=obs_ids,
                        validate=True, **extra)
    return dm.data


def run_ssu(d, case, kind, prec):
    out = "%s/ssu_%s_%s_%s.h5" % (d, case, kind, prec)
    subprocess.run(["ssu", "-i", "%s/%s.biom" % (d, case), "-t", "%s/%s.nwk" % (d, case), "-m",
                    "%s_%s" % (kind, prec), "-o", out, "--format", "hdf5_%s" % prec],
                   check=True, stdout=subprocess.DEVNULL)


def make(d):
    rng = np.random.default_rng(20240613)
    worked = np.array([[WORKED_COUNTS[s].get(o, 0) for s in WORKED_SAMPLES] for o in WORKED_OTUS])
    cases = {"worked": (worked, WORKED_OTUS, WORKED_SAMPLES, WORKED_TREE), "random": random_case(rng)}
    for case, (counts, obs, samples, tree) in cases.items():
        write_biom("%s/%s.biom" % (d, case), counts, obs, samples)
        with open("%s/%s.nwk" % (d, case), "w") as f:
            f.write(tree)
        for kind in KINDS:
            write_matrix("%s/skbio_%s_%s.h5" % (d, case, kind), skbio_matrix(kind, counts, obs, samples, tree), samples)
            for prec in ("fp64", "fp32"):
                run_ssu(d, case, kind, prec)
    with open("%s/worked_messy.nwk" % d, "w") as f:
        f.write(WORKED_MESSY)

    # Bad inputs.
    write_biom("%s/missing.biom" % d, np.vstack([worked, [[0, 1, 0, 0, 0, 0]]]), WORKED_OTUS + ["GG_OTU_9"],
               WORKED_SAMPLES)
    with open("%s/quote.nwk" % d, "w") as f:
        f.write(WORKED_TREE.replace("GG_OTU_3", "'GG''OTU_3'"))
    with h5py.File("%s/worked.biom" % d, "r") as src, h5py.File("%s/nocsr.biom" % d, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for g in ("observation", "sample"):
            src.copy(g, dst)
        del dst["observation/matrix"]
    m = skbio_matrix("unweighted", worked, WORKED_OTUS, WORKED_SAMPLES, WORKED_TREE)
    write_matrix("%s/distances.h5" % d, m, WORKED_SAMPLES, key="distances", dtype=np.float32)
    write_matrix("%s/bad_square.h5" % d, m[:, :5], WORKED_SAMPLES)
    asym = m.copy()
    asym[1, 4] += 1e-9
    write_matrix("%s/bad_asym.h5" % d, asym, WORKED_SAMPLES)
    diag = m.copy()
    diag[2, 2] = 0.5
    write_matrix("%s/bad_diag.h5" % d, diag, WORKED_SAMPLES)
    nan = m.copy()
    nan[3, 0] = nan[0, 3] = np.nan
    write_matrix("%s/bad_nan.h5" % d, nan, WORKED_SAMPLES)
    write_matrix("%s/bad_dup.h5" % d, m, ["S1", "S2", "S3", "S2", "S5", "S6"])
    write_matrix("%s/bad_order.h5" % d, m, WORKED_SAMPLES[:5])
    # Fixed-length ids, as numpy 'S' arrays store them.
    with h5py.File("%s/fixed_ids.h5" % d, "w") as f:
        f.create_dataset("order", data=np.array([s.encode() for s in WORKED_SAMPLES], dtype="S8"))
        f.create_dataset("matrix", data=m)


def check(path, ref, ids, dtype, tol):
    from skbio import DistanceMatrix
    with h5py.File(path, "r") as f:
        assert sorted(f.keys()) == ["format", "matrix", "order", "version"], list(f.keys())
        assert f["format"][0] == b"BDSM" and f["version"][0] == b"2020.12", (f["format"][0], f["version"][0])
        assert f["matrix"].dtype == np.dtype(dtype), f["matrix"].dtype
        order = [s.decode() for s in f["order"][...]]
        matrix = f["matrix"][...].astype(np.float64)
    assert order == ids.split(","), order
    DistanceMatrix(matrix, ids=order)   # square, symmetric, hollow: as the source system loads it
    with h5py.File(ref, "r") as f:
        want = f["matrix"][...]
    err = float(np.max(np.abs(matrix - want)))
    print("unifrac_check: %s vs %s: max |diff| %.3e (tolerance %g)" % (path, ref, err, tol))
    assert err <= tol, err


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 7 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]))
    else:
        sys.exit(__doc__)
