# fusebench — `make help` lists the targets.
#
# Everything is built with mpicc (Open MPI) and found through pkg-config. Package set-up is
# `make deps` (scripts/deps.sh); `make run` and `make test` call it first.

CC       := mpicc
ARCH     ?= -march=native
OPT      ?= -O3
SAN      ?=
BUILD    ?= build
PKGS     := openblas hdf5-openmpi cmocka papi
# Recursive (=) so pkg-config runs after `make deps` has installed the packages.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
BLAS_LIBDIR = $(shell pkg-config --variable=libdir openblas 2>/dev/null)
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)

CODEGEN  = $(strip $(OPT) $(ARCH) $(SAN)) -fopenmp -fno-math-errno
CFLAGS   = $(CODEGEN) -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -MMD -MP -DFB_SOURCE_DIR=\"$(CURDIR)\" $(PKG_CFLAGS)
LDFLAGS  = $(SAN) -fopenmp -Wl,-rpath,$(BLAS_LIBDIR)
# hdf5_hl (dimension scales, io/h5trace.c): pkg-config hdf5-openmpi names only -lhdf5; its -L finds it.
# libssu (Striped UniFrac, datasets/unifrac.c) has no pkg-config file; --as-needed links it (and the
# C++ runtime and serial HDF5 it pulls in) only into binaries that call it.
LDLIBS   = -lhdf5_hl $(PKG_LIBS) -lsde -Wl,--push-state,--as-needed -lssu -Wl,--pop-state -lm

LIB_SRC   := $(wildcard kernels/*.c kernels/fusion/*.c io/*.c harness/*.c profiling/*.c datasets/*.c studies/*.c)
BENCH_SRC := $(wildcard bench/*.c)
TEST_SRC  := $(wildcard tests/test_*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB       := $(BUILD)/libfusebench.a
FUSEBENCH := bench/fusebench
# Every object depends on FLAGS_STAMP, rewritten only when the compile flags change, so a new
# OPT/ARCH/SAN or Makefile flag rebuilds everything. BUILD_INFO (commit and flags, recorded in every
# result file) is regenerated when the commit or the tree's dirtiness changes.
FLAGS_STAMP := $(BUILD)/compile-flags
BUILD_INFO  := $(BUILD)/gen/build_info.c

# libFuzzer targets (fuzz/fuzz_<name>.c): clang with ASan + UBSan, linked with the few sources a
# parser needs (not the MPI/HDF5 library). `make fuzz` runs each for FUZZ_SECONDS from its seed
# corpus fuzz/corpus/<name>/ (read only; new inputs go to $(BUILD)/fuzz/corpus-<name>/).
FUZZ_CC      := clang
FUZZ_CFLAGS  := -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined
FUZZ_LIB_SRC := datasets/newick.c datasets/strindex.c datasets/structs.c kernels/common.c \
                $(wildcard datasets/metadata.c)
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_SECONDS ?= 60
# Can clang link a libFuzzer binary here (clang + libclang-rt-dev installed)?
FUZZ_PROBE = printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' | \
             $(FUZZ_CC) -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1

.SECONDARY:
.PHONY: all deps run kernels study studies test test-only sanitize refs bench compare-torch clean help fuzz fuzz-build plots FORCE
all: $(FUSEBENCH) $(TEST_BIN)

help:
	@echo "make run        install missing packages, build, run the main job (the default sweep + report)"
	@echo "make kernels    the kernel benchmark (THREADS=1,2)"
	@echo "make study NAME=imbalance   one study of a document's claim: sweep, verdict, plot (fusebench study --list)"
	@echo "make studies    every study (about 9 min on 2 cores) with the HTML report"
	@echo "make test       install missing packages, build and run every test"
	@echo "make sanitize   build and run the tests under ASan + UBSan (build-sanitize/)"
	@echo "make refs       regenerate tests/fixtures/ with PyTorch (installs python3-torch)"
	@echo "make compare-torch  fusion methods vs PyTorch, same shapes and threads (SMALL=1: small shapes)"
	@echo "make fuzz       build the libFuzzer targets (fuzz/) and run each FUZZ_SECONDS (default 60)"
	@echo "make plots RESULTS=DIR  figures + HTML report of the results in DIR (DIR/report/index.html)"
	@echo "make deps       install missing Debian packages (root) or print the apt-get line"
	@echo "make clean      remove build outputs (results/ is kept)"
	@echo "variables: ARCH=$(ARCH) OPT=$(OPT) BUILD=$(BUILD) THREADS=<n> for make run"

deps:
	@scripts/deps.sh

# The main job: the embedded default sweep (bench/default.sweep) run here with mpirun, merged, with
# the HTML report, under results/sweep-<date>-<time>/.
RUN_DIR ?= results/sweep-$(shell date +%Y%m%d-%H%M%S)
run: deps
	@$(MAKE) --no-print-directory $(FUSEBENCH)
	$(FUSEBENCH) sweep plan bench/default.sweep --out $(RUN_DIR)
	$(FUSEBENCH) sweep run $(RUN_DIR) --local
	@echo "report: $(RUN_DIR)/report/index.html"

# The studies (studies/, README "Studies"): one with NAME=..., or all of them with the HTML report.
study: deps
	@test -n "$(NAME)" || { echo "make study: say which, e.g. make study NAME=imbalance (bench/fusebench study --list)"; exit 2; }
	@$(MAKE) --no-print-directory $(FUSEBENCH)
	$(FUSEBENCH) study $(NAME)

studies: deps
	@$(MAKE) --no-print-directory $(FUSEBENCH)
	$(FUSEBENCH) study --all

# The kernel benchmark (make kernels THREADS=1,2).
kernels: $(FUSEBENCH)
	$(FUSEBENCH) kernels $(if $(THREADS),--threads $(THREADS),)

test: deps
	@$(MAKE) --no-print-directory test-only

test-only: $(TEST_BIN) $(FUSEBENCH) $(if $(SAN),,fuzz-build)
	@FUSEBENCH=$(FUSEBENCH) FB_FUZZ_DIR=$(BUILD)/fuzz FB_SKIP_MPI_TESTS=$(if $(SAN),1,0) tests/run_tests.sh $(BUILD)/tests

# Sanitized build: its own build folder, -O1 for readable reports. Leak checking stays on; the
# suppressions file names one leak inside PAPI's libsde (see the file).
sanitize: deps
	@LSAN_OPTIONS="$${LSAN_OPTIONS:+$$LSAN_OPTIONS:}suppressions=$(CURDIR)/profiling/lsan.supp" \
	  $(MAKE) --no-print-directory BUILD=build-sanitize OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  FUSEBENCH=build-sanitize/fusebench test-only

refs:
	@scripts/deps.sh refs
	/usr/bin/python3 tests/refs/make_refs.py

bench: $(FUSEBENCH)

# Fusion methods against PyTorch in one session: default shapes, then (SMALL=1) small ones.
compare-torch:
	@scripts/deps.sh refs
	@$(MAKE) --no-print-directory $(FUSEBENCH)
	/usr/bin/python3 bench/compare_torch.py --threads $(or $(THREADS),1,2) $(if $(SMALL),--small,)

# Figures and the static HTML report of a results folder (plots/README.md): RESULTS=DIR.
plots:
	@test -n "$(RESULTS)" || { echo "make plots: say which results folder, e.g. make plots RESULTS=results"; exit 2; }
	/usr/bin/python3 plots/report.py $(RESULTS)

# The fuzzers are built when clang can link them; otherwise tests/test_fuzz.sh says they were skipped.
fuzz-build:
	@if $(FUZZ_PROBE); then $(MAKE) --no-print-directory -s $(FUZZ_BIN); \
	else echo "fuzz: clang cannot link -fsanitize=fuzzer (make deps installs clang and libclang-rt-dev): fuzzers not built"; fi

fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@for name in $(FUZZ_NAMES); do \
	  mkdir -p $(BUILD)/fuzz/corpus-$$name $(BUILD)/fuzz/artifacts-$$name; \
	  echo "== fuzz_$$name for $(FUZZ_SECONDS) s"; \
	  $(BUILD)/fuzz/fuzz_$$name -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    $$( [ -f fuzz/$$name.dict ] && echo -dict=fuzz/$$name.dict ) \
	    -artifact_prefix=$(BUILD)/fuzz/artifacts-$$name/ $(BUILD)/fuzz/corpus-$$name fuzz/corpus/$$name || exit 1; \
	done

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIB_SRC) $(wildcard datasets/*.h kernels/common.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRC)

# Rebuilt whole: kernels/attention.o and kernels/fusion/attention.o share a member name, which
# `ar r` on an existing archive would confuse.
$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^

$(FUSEBENCH): $(BENCH_OBJ) $(BUILD)/obj/gen/build_info.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(BUILD)/obj/tests/testutil.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/gen/build_info.o: $(BUILD_INFO) $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(FLAGS_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS)' > $@

$(BUILD_INFO): FORCE
	@mkdir -p $(@D)
	@printf 'const char fb_build_commit[] = "%s";\nconst char fb_build_cflags[] = "%s";\n' \
	  '$(GIT_COMMIT)' '$(CODEGEN)' | cmp -s - $@ || \
	  printf 'const char fb_build_commit[] = "%s";\nconst char fb_build_cflags[] = "%s";\n' \
	  '$(GIT_COMMIT)' '$(CODEGEN)' > $@

clean:
	rm -rf build build-sanitize $(FUSEBENCH)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
