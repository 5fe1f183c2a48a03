// modality_dropout (002): "batch-level dropout (torch.rand(1): a modality dropped for the entire
// batch) increases regularisation but can add instability" — against per-sample masks.
//
// Runs: modality_dropout (p = 0.3 per modality) on the multimodal model with the documented
// batch-global masks (arm `batch`) and per-sample masks (`per_sample`), five seeds.
// Figures per run: step-to-step loss noise, the std of the loss's first differences over the second
// half of the run (a batch that loses a modality for every sample at once moves the whole batch's
// loss; per-sample masks average that out), and the final model's held-out accuracy.
// Rule: paired by seed (the same data and initial weights in both arms).
#include "study.h"
#include <math.h>

static const char *const needs[] = { "steps/loss", "summary/holdout_accuracy", "summary/holdout_loss", NULL };

static double loss_noise(const study_run *r, const void *ctx) {
    (void)ctx;
    size_t n;
    const double *loss = study_get(r, "steps/loss", &n);
    if (!loss || n < 8) return NAN;
    double sum = 0, sq = 0;
    const size_t from = n / 2;
    for (size_t i = from + 1; i < n; i++) sum += loss[i] - loss[i - 1];
    const double m = sum / (double)(n - from - 1);
    for (size_t i = from + 1; i < n; i++) sq += (loss[i] - loss[i - 1] - m) * (loss[i] - loss[i - 1] - m);
    return sqrt(sq / (double)(n - from - 1));
}

static void analyse(const study_set *s, study_result *res) {
    const study_filter batch = { .arm = "batch" }, sample = { .arm = "per_sample" };
    for (int a = 0; a < 2; a++) {
        const study_filter *f = a ? &sample : &batch;
        study_add_agg(res, s, f, "loss_step_std", loss_noise, NULL, "1",
                      "std of the step-to-step loss change over the second half of the run");
        study_add_agg(res, s, f, "holdout_accuracy", study_fn_scalar, "summary/holdout_accuracy", "1",
                      "accuracy of the final model on the held-out samples");
        study_add_agg(res, s, f, "holdout_loss", study_fn_scalar, "summary/holdout_loss", "1",
                      "cross-entropy of the final model on the held-out samples");
    }
    double noisier[64], acc[64];
    const int nn = study_paired(s, &batch, &sample, loss_noise, NULL, noisier, 64);
    const int na = study_paired(s, &batch, &sample, study_fn_scalar, "summary/holdout_accuracy", acc, 64);
    int n_noisier = 0;
    double acc_diff = 0;
    for (int i = 0; i < nn; i++) n_noisier += noisier[i] > 0;
    for (int i = 0; i < na; i++) acc_diff += acc[i] / na;
    study_add_deciding(res, "seeds_noisier", "batch vs per_sample", n_noisier, nn, "seeds", nn,
                       "seeds on which the batch-global masks give the noisier loss");
    study_add(res, "holdout_accuracy_diff", "batch vs per_sample", acc_diff, NAN, na, "1",
              "mean paired held-out accuracy difference, batch minus per_sample (reported, not judged)");
    study_rule(res, "paired by seed: CONFIRMED (batch-global masks add instability) when the batch variant's "
                    "step-to-step loss noise is larger on every seed; REFUTED when it is larger on no seed; otherwise "
                    "INCONCLUSIVE. The held-out accuracy difference is reported beside it (regularisation's side)");
    if (nn < 2) {
        study_decide(res, STUDY_INCONCLUSIVE, "%d seed pairs with loss series: too few", nn);
        return;
    }
    const study_verdict v = n_noisier == nn ? STUDY_CONFIRMED : n_noisier == 0 ? STUDY_REFUTED : STUDY_INCONCLUSIVE;
    study_decide(res, v,
                 "batch-global masks gave the noisier loss on %d of %d seeds; held-out accuracy %+.3f "
                 "(batch minus per_sample, mean of %d seeds)",
                 n_noisier, nn, acc_diff, na);
}

const study_def study_modality_dropout = {
    .name = "modality_dropout",
    .document = "002",
    .claim = "Batch-global modality dropout (one draw per batch) adds training instability compared with "
             "per-sample masks.",
    .spec = "scenario: multimodal\n"
            "method: modality_dropout\n"
            "arm: batch --variant batch\n"
            "arm: per_sample --variant per_sample\n"
            "batch: 32\n"
            "steps: 300\n"
            "seed: 1..5\n"
            "extra: --trace-every 50 --eval-check-every 0 --no-counters --holdout 512\n",
    .needs = needs,
    .minutes = "0.1",
    .analyse = analyse,
};
