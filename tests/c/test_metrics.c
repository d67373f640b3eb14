/* C surface test of libvton's image-quality metrics: PSNR, SSIM (two conventions),
 * MS-SSIM, LPIPS (alex), FID and KID against the package reference values of
 * tests/fixtures/metrics (extracted to raw RGB files and reference.txt under
 * tests/fixtures/metrics/c by scripts/fixtures/make_c_metrics_fixture.py), then error
 * statuses with their messages and out-parameters untouched, NULL-safe frees.
 *
 * Usage: test_metrics METRICS_FIXTURE_DIR [leak]
 *   METRICS_FIXTURE_DIR: tests/fixtures/metrics (holds the weights and c/)
 *   leak: the valgrind run; the FID / KID reference check (22 Inception passes, about
 *         2.5 minutes under valgrind) is replaced by two small images per set.
 * Build and run: see scripts/test-all.sh (runs it under valgrind's leak check too). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vton.h"

static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); failures++; } } while (0)

/* Tolerances of the pixel metrics (absolute). The uint8 -> float64 path computes what
 * scikit-image computes, so SSIM agrees far below the fixture's float32 tolerance. */
#define TOL_PSNR 1e-4
#define TOL_SSIM 1e-8
#define TOL_MS_SSIM 5e-5

/* ---- reference.txt: "key value" lines, '#' comments ---------------------------------- */
#define MAX_REFS 64
static char ref_keys[MAX_REFS][64];
static double ref_vals[MAX_REFS];
static int ref_count = 0;

static void read_references(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char key[64];
        double v;
        if (sscanf(line, "%63s %lf", key, &v) != 2 || ref_count == MAX_REFS) {
            fprintf(stderr, "bad line in %s: %s", path, line);
            exit(2);
        }
        strcpy(ref_keys[ref_count], key);
        ref_vals[ref_count++] = v;
    }
    fclose(f);
}

static int has_ref(const char *key) {
    for (int i = 0; i < ref_count; i++)
        if (strcmp(ref_keys[i], key) == 0) return 1;
    return 0;
}

static double ref(const char *key) {
    for (int i = 0; i < ref_count; i++)
        if (strcmp(ref_keys[i], key) == 0) return ref_vals[i];
    fprintf(stderr, "reference.txt has no %s\n", key);
    exit(2);
}

static unsigned char *read_raw(const char *path, size_t expected) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
    unsigned char *buf = malloc(expected + 1);
    size_t n = fread(buf, 1, expected + 1, f);
    fclose(f);
    if (n != expected) {
        fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, n, expected);
        exit(2);
    }
    return buf;
}

static int close_to(double got, double want, double atol, double rtol) {
    return fabs(got - want) <= atol + rtol * fabs(want);
}

/* ---- per-pair metrics -------------------------------------------------------------- */
static void check_pair(const char *dir, int i, const vton_lpips *lpips) {
    char key[64], path[1024];
    snprintf(key, sizeof key, "pair%d.height", i);
    size_t h = (size_t)ref(key);
    snprintf(key, sizeof key, "pair%d.width", i);
    size_t w = (size_t)ref(key);
    snprintf(path, sizeof path, "%s/c/pair%d_a.rgb", dir, i);
    unsigned char *a = read_raw(path, h * w * 3);
    snprintf(path, sizeof path, "%s/c/pair%d_b.rgb", dir, i);
    unsigned char *b = read_raw(path, h * w * 3);
    double v = NAN, want;
    vton_status s;

    s = vton_metrics_psnr(a, b, h, w, 3, 255.0, &v);
    snprintf(key, sizeof key, "pair%d.psnr", i);
    want = ref(key);
    CHECK(s == VTON_STATUS_OK && close_to(v, want, TOL_PSNR, 0), "pair %d PSNR %.10f, want %.10f (%s)", i, v, want,
          vton_last_error_message());
    CHECK(strcmp(vton_last_error_message(), "") == 0, "message after success: %s", vton_last_error_message());

    v = NAN;
    s = vton_metrics_ssim(a, b, h, w, 3, 255.0, NULL, &v);
    snprintf(key, sizeof key, "pair%d.ssim_skimage_gaussian", i);
    want = ref(key);
    CHECK(s == VTON_STATUS_OK && close_to(v, want, TOL_SSIM, 0), "pair %d SSIM (NULL convention) %.12f, want %.12f (%s)",
          i, v, want, vton_last_error_message());
    double v2 = NAN;
    s = vton_metrics_ssim(a, b, h, w, 3, 255.0, "skimage-gaussian", &v2);
    CHECK(s == VTON_STATUS_OK && v2 == v, "pair %d SSIM skimage-gaussian %.12f vs NULL %.12f", i, v2, v);

    v = NAN;
    s = vton_metrics_ssim(a, b, h, w, 3, 255.0, "skimage-default", &v);
    snprintf(key, sizeof key, "pair%d.ssim_skimage_default", i);
    want = ref(key);
    CHECK(s == VTON_STATUS_OK && close_to(v, want, TOL_SSIM, 0), "pair %d SSIM skimage-default %.12f, want %.12f (%s)", i,
          v, want, vton_last_error_message());

    snprintf(key, sizeof key, "pair%d.ms_ssim", i);
    if (has_ref(key)) {
        v = NAN;
        want = ref(key);
        s = vton_metrics_ms_ssim(a, b, h, w, 3, 255.0, &v);
        CHECK(s == VTON_STATUS_OK && close_to(v, want, TOL_MS_SSIM, 0), "pair %d MS-SSIM %.10f, want %.10f (%s)", i, v,
              want, vton_last_error_message());
    } else {
        /* Too small for five scales: an error with a message, out untouched. */
        v = -7.0;
        s = vton_metrics_ms_ssim(a, b, h, w, 3, 255.0, &v);
        CHECK(s == VTON_STATUS_INVALID_ARGUMENT && v == -7.0, "pair %d MS-SSIM on %zux%zu: status %d, out %f", i, h, w,
              (int)s, v);
        CHECK(strstr(vton_last_error_message(), "MS-SSIM") != NULL, "message: %s", vton_last_error_message());
    }

    if (lpips) {
        float d = NAN;
        snprintf(key, sizeof key, "pair%d.lpips_alex", i);
        want = ref(key);
        s = vton_lpips_distance(lpips, a, b, h, w, &d);
        CHECK(s == VTON_STATUS_OK && close_to(d, want, ref("tol.lpips.atol"), ref("tol.lpips.rtol")),
              "pair %d LPIPS alex %.9f, want %.9f (%s)", i, d, want, vton_last_error_message());
        float same = NAN;
        s = vton_lpips_distance(lpips, a, a, h, w, &same);
        CHECK(s == VTON_STATUS_OK && fabsf(same) < 1e-7f, "pair %d LPIPS(a, a) = %g", i, same);
    }
    free(a);
    free(b);
}

/* ---- error paths of the pixel metrics ---------------------------------------------- */
static void check_pixel_errors(void) {
    enum { H = 32, W = 24 };
    static unsigned char a[H * W * 3], b[H * W * 3];
    for (int i = 0; i < H * W * 3; i++) {
        a[i] = (unsigned char)(i * 7);
        b[i] = (unsigned char)(i * 7 + (i % 5));
    }
    double out = -1.0, v;

    /* Grey images (1 channel) work; identical images give +inf PSNR and SSIM 1. */
    CHECK(vton_metrics_psnr(a, b, H, W * 3, 1, 255.0, &v) == VTON_STATUS_OK && v > 0 && isfinite(v), "grey PSNR %f", v);
    CHECK(vton_metrics_psnr(a, a, H, W, 3, 255.0, &v) == VTON_STATUS_OK && isinf(v) && v > 0, "PSNR(a, a) = %f", v);
    CHECK(vton_metrics_ssim(a, a, H, W, 3, 255.0, NULL, &v) == VTON_STATUS_OK && fabs(v - 1.0) < 1e-12, "SSIM(a, a) = %f",
          v);
    CHECK(vton_metrics_ssim(a, b, H, W, 3, 255.0, "torchmetrics", &v) == VTON_STATUS_OK && v > 0 && v < 1,
          "torchmetrics SSIM %f", v);

    /* NULL pointers. */
    CHECK(vton_metrics_psnr(NULL, b, H, W, 3, 255.0, &out) == VTON_STATUS_NULL_ARGUMENT && out == -1.0, "PSNR NULL a");
    CHECK(strstr(vton_last_error_message(), "a is NULL") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_metrics_psnr(a, NULL, H, W, 3, 255.0, &out) == VTON_STATUS_NULL_ARGUMENT && out == -1.0, "PSNR NULL b");
    CHECK(strstr(vton_last_error_message(), "b is NULL") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_metrics_psnr(a, b, H, W, 3, 255.0, NULL) == VTON_STATUS_NULL_ARGUMENT, "PSNR NULL out");
    CHECK(vton_metrics_ssim(NULL, b, H, W, 3, 255.0, NULL, &out) == VTON_STATUS_NULL_ARGUMENT && out == -1.0,
          "SSIM NULL a");
    CHECK(vton_metrics_ssim(a, b, H, W, 3, 255.0, NULL, NULL) == VTON_STATUS_NULL_ARGUMENT, "SSIM NULL out");
    CHECK(vton_metrics_ms_ssim(a, NULL, H, W, 3, 255.0, &out) == VTON_STATUS_NULL_ARGUMENT && out == -1.0,
          "MS-SSIM NULL b");
    CHECK(vton_metrics_ms_ssim(a, b, H, W, 3, 255.0, NULL) == VTON_STATUS_NULL_ARGUMENT, "MS-SSIM NULL out");

    /* Zero sizes, channels other than 1 and 3, overflowing sizes. */
    CHECK(vton_metrics_psnr(a, b, 0, W, 3, 255.0, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0, "zero height");
    CHECK(strstr(vton_last_error_message(), "height") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_metrics_ssim(a, b, H, 0, 3, 255.0, NULL, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0,
          "zero width");
    CHECK(vton_metrics_ms_ssim(a, b, H, W, 0, 255.0, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0,
          "zero channels");
    CHECK(vton_metrics_psnr(a, b, H, W, 4, 255.0, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0, "4 channels");
    CHECK(strstr(vton_last_error_message(), "channels") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_metrics_ssim(a, b, H, W, 2, 255.0, NULL, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0,
          "2 channels");
    CHECK(vton_metrics_psnr(a, b, (size_t)-1, 2, 3, 255.0, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0,
          "overflowing size");
    CHECK(strstr(vton_last_error_message(), "overflow") != NULL, "message: %s", vton_last_error_message());

    /* Bad data range. */
    CHECK(vton_metrics_psnr(a, b, H, W, 3, 0.0, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0, "data_range 0");
    CHECK(strstr(vton_last_error_message(), "data_range") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_metrics_ssim(a, b, H, W, 3, NAN, NULL, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0,
          "data_range NaN");
    CHECK(vton_metrics_ms_ssim(a, b, H, W, 3, -1.0, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0,
          "data_range -1");

    /* Unknown convention; images smaller than the SSIM window; MS-SSIM too small. */
    CHECK(vton_metrics_ssim(a, b, H, W, 3, 255.0, "kornia", &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0,
          "unknown convention");
    CHECK(strstr(vton_last_error_message(), "kornia") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_metrics_ssim(a, b, 8, 8, 3, 255.0, NULL, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0,
          "8x8 SSIM");
    CHECK(strstr(vton_last_error_message(), "window") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_metrics_ms_ssim(a, b, H, W, 3, 255.0, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0,
          "MS-SSIM %dx%d", H, W);
    CHECK(strlen(vton_last_error_message()) > 0, "no message for a small MS-SSIM");
}

/* ---- LPIPS loading and errors -------------------------------------------------------- */
static vton_lpips *check_lpips(const char *dir) {
    char weights[1024];
    snprintf(weights, sizeof weights, "%s/metrics_weights_lpips_alex.safetensors", dir);
    vton_lpips *lpips = NULL;
    /* backbone = lin = the fixture file (both parts found under their prefixes). */
    vton_status s = vton_lpips_load(weights, "alex", weights, &lpips);
    CHECK(s == VTON_STATUS_OK && lpips != NULL, "lpips load: %s", vton_last_error_message());

    /* lin NULL: the file's own lin layers (found under their prefix), so the same model. */
    vton_lpips *own = NULL;
    s = vton_lpips_load(weights, NULL, NULL, &own);
    CHECK(s == VTON_STATUS_OK && own != NULL, "lpips load (NULL net and lin): %s", vton_last_error_message());

    enum { H = 48, W = 40 };
    static unsigned char a[H * W * 3], b[H * W * 3];
    for (int i = 0; i < H * W * 3; i++) {
        a[i] = (unsigned char)((i * 13) ^ (i >> 4));
        b[i] = (unsigned char)(a[i] + (i % 11) * 3);
    }
    float d1 = NAN, d2 = NAN, out = -1.0f;
    if (lpips && own) {
        CHECK(vton_lpips_distance(lpips, a, b, H, W, &d1) == VTON_STATUS_OK, "distance: %s", vton_last_error_message());
        CHECK(vton_lpips_distance(own, a, b, H, W, &d2) == VTON_STATUS_OK, "distance: %s", vton_last_error_message());
        CHECK(d1 == d2 && d1 > 0, "explicit lin %g vs the file's own %g", d1, d2);
        /* Errors: out untouched. */
        CHECK(vton_lpips_distance(NULL, a, b, H, W, &out) == VTON_STATUS_NULL_ARGUMENT && out == -1.0f, "NULL lpips");
        CHECK(strstr(vton_last_error_message(), "lpips") != NULL, "message: %s", vton_last_error_message());
        CHECK(vton_lpips_distance(lpips, NULL, b, H, W, &out) == VTON_STATUS_NULL_ARGUMENT && out == -1.0f, "NULL a");
        CHECK(vton_lpips_distance(lpips, a, NULL, H, W, &out) == VTON_STATUS_NULL_ARGUMENT && out == -1.0f, "NULL b");
        CHECK(vton_lpips_distance(lpips, a, b, H, W, NULL) == VTON_STATUS_NULL_ARGUMENT, "NULL out");
        CHECK(vton_lpips_distance(lpips, a, b, 0, W, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0f, "zero height");
        CHECK(vton_lpips_distance(lpips, a, b, 16, 16, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0f,
              "16x16 (alex needs 31)");
        CHECK(strstr(vton_last_error_message(), "at least") != NULL, "message: %s", vton_last_error_message());
    }

    vton_lpips *bad = (vton_lpips *)&failures; /* sentinel, never dereferenced */
    vton_lpips *q = bad;
    CHECK(vton_lpips_load(NULL, "alex", NULL, &q) == VTON_STATUS_NULL_ARGUMENT && q == bad, "NULL backbone");
    CHECK(strstr(vton_last_error_message(), "backbone") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_lpips_load(weights, "alex", NULL, NULL) == VTON_STATUS_NULL_ARGUMENT, "NULL out");
    CHECK(vton_lpips_load(weights, "resnet", NULL, &q) == VTON_STATUS_INVALID_ARGUMENT && q == bad, "unknown net");
    CHECK(strstr(vton_last_error_message(), "resnet") != NULL, "message: %s", vton_last_error_message());
    s = vton_lpips_load("/nonexistent/alexnet.pth", "alex", NULL, &q);
    CHECK(s == VTON_STATUS_FILE_NOT_FOUND && q == bad, "missing backbone: status %d (%s)", (int)s,
          vton_last_error_message());
    s = vton_lpips_load(weights, "alex", "/nonexistent/lin.pth", &q);
    CHECK(s == VTON_STATUS_FILE_NOT_FOUND && q == bad, "missing lin: status %d (%s)", (int)s, vton_last_error_message());
    /* The alex file read as squeeze: its weights do not fit. */
    s = vton_lpips_load(weights, "squeeze", weights, &q);
    CHECK(s == VTON_STATUS_CHECKPOINT && q == bad, "alex weights as squeeze: status %d (%s)", (int)s,
          vton_last_error_message());
    CHECK(strlen(vton_last_error_message()) > 0, "no message for mismatched weights");
    vton_lpips_free(own);
    vton_lpips_free(NULL);
    return lpips;
}

/* ---- FID and KID --------------------------------------------------------------------- */
static void check_fid(const char *dir, int run_network) {
    char weights[1024], path[1024];
    snprintf(weights, sizeof weights, "%s/metrics_weights_fid_inception.safetensors", dir);
    vton_fid *fid = NULL;
    vton_status s = vton_fid_load(weights, &fid);
    CHECK(s == VTON_STATUS_OK && fid != NULL, "fid load: %s", vton_last_error_message());
    if (!fid) return;
    CHECK(vton_fid_count(fid, 1) == 0 && vton_fid_count(fid, 0) == 0, "fresh counts");
    double out = -1.0, mean = -1.0, sd = -1.0;

    /* Too few images: no image at all. */
    CHECK(vton_fid_compute(fid, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0, "FID of empty sets");
    CHECK(strstr(vton_last_error_message(), "at least 2") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_fid_compute_kid(fid, 10, 2, &mean, &sd) == VTON_STATUS_INVALID_ARGUMENT && mean == -1.0 && sd == -1.0,
          "KID of empty sets");

    /* Update errors add nothing. */
    unsigned char px[4 * 4 * 3] = {0};
    CHECK(vton_fid_update(NULL, px, 4, 4, 1) == VTON_STATUS_NULL_ARGUMENT, "NULL fid");
    CHECK(strstr(vton_last_error_message(), "fid") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_fid_update(fid, NULL, 4, 4, 1) == VTON_STATUS_NULL_ARGUMENT, "NULL image");
    CHECK(vton_fid_update(fid, px, 0, 4, 1) == VTON_STATUS_INVALID_ARGUMENT, "zero height");
    CHECK(vton_fid_update(fid, px, 4, 0, 0) == VTON_STATUS_INVALID_ARGUMENT, "zero width");
    CHECK(vton_fid_count(fid, 1) == 0 && vton_fid_count(fid, 0) == 0, "counts after failed updates");
    CHECK(vton_fid_compute(NULL, &out) == VTON_STATUS_NULL_ARGUMENT && out == -1.0, "compute NULL fid");
    CHECK(vton_fid_compute(fid, NULL) == VTON_STATUS_NULL_ARGUMENT, "compute NULL out");
    CHECK(vton_fid_compute_kid(NULL, 10, 2, &mean, &sd) == VTON_STATUS_NULL_ARGUMENT, "KID NULL fid");
    CHECK(vton_fid_compute_kid(fid, 10, 2, NULL, &sd) == VTON_STATUS_NULL_ARGUMENT && sd == -1.0, "KID NULL mean");
    CHECK(vton_fid_compute_kid(fid, 10, 2, &mean, NULL) == VTON_STATUS_NULL_ARGUMENT && mean == -1.0, "KID NULL std");
    CHECK(vton_fid_count(NULL, 1) == 0, "count of NULL");

    if (run_network) {
        size_t h = (size_t)ref("fid.height"), w = (size_t)ref("fid.width"), per = h * w * 3;
        size_t nr = (size_t)ref("fid.real_count"), nf = (size_t)ref("fid.fake_count");
        snprintf(path, sizeof path, "%s/c/fid_real.rgb", dir);
        unsigned char *real = read_raw(path, nr * per);
        snprintf(path, sizeof path, "%s/c/fid_fake.rgb", dir);
        unsigned char *fake = read_raw(path, nf * per);

        /* One image per set: FID is still undefined. */
        CHECK(vton_fid_update(fid, real, h, w, 1) == VTON_STATUS_OK, "update: %s", vton_last_error_message());
        CHECK(vton_fid_update(fid, fake, h, w, 0) == VTON_STATUS_OK, "update: %s", vton_last_error_message());
        CHECK(vton_fid_compute(fid, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0, "FID of 1 + 1 images");
        CHECK(strstr(vton_last_error_message(), "at least 2") != NULL, "message: %s", vton_last_error_message());
        for (size_t i = 1; i < nr; i++)
            CHECK(vton_fid_update(fid, real + i * per, h, w, 1) == VTON_STATUS_OK, "real %zu: %s", i,
                  vton_last_error_message());
        for (size_t i = 1; i < nf; i++)
            CHECK(vton_fid_update(fid, fake + i * per, h, w, 0) == VTON_STATUS_OK, "fake %zu: %s", i,
                  vton_last_error_message());
        CHECK(vton_fid_count(fid, 1) == nr && vton_fid_count(fid, 0) == nf, "counts %zu, %zu", vton_fid_count(fid, 1),
              vton_fid_count(fid, 0));

        double want = ref("fid.fid");
        s = vton_fid_compute(fid, &out);
        CHECK(s == VTON_STATUS_OK && close_to(out, want, ref("tol.fid.atol"), ref("tol.fid.rtol")),
              "FID %.6f, want %.6f (%s)", out, want, vton_last_error_message());
        size_t subsets = (size_t)ref("fid.kid_subsets"), size = (size_t)ref("fid.kid_subset_size");
        double ka = ref("tol.kid.atol"), kr = ref("tol.kid.rtol");
        s = vton_fid_compute_kid(fid, subsets, size, &mean, &sd);
        CHECK(s == VTON_STATUS_OK && close_to(mean, ref("fid.kid_mean"), ka, kr), "KID mean %.8f, want %.8f (%s)", mean,
              ref("fid.kid_mean"), vton_last_error_message());
        CHECK(s == VTON_STATUS_OK && close_to(sd, ref("fid.kid_std"), ka, kr), "KID std %.8f, want %.8f", sd,
              ref("fid.kid_std"));
        printf("FID %.6f (ref %.6f), KID %.8f +- %.8f (ref %.8f +- %.8f)\n", out, want, mean, sd, ref("fid.kid_mean"),
               ref("fid.kid_std"));

        /* KID subset sizes the sets cannot give; out-parameters untouched. */
        double m2 = -1.0, s2 = -1.0;
        CHECK(vton_fid_compute_kid(fid, subsets, nf + 1, &m2, &s2) == VTON_STATUS_INVALID_ARGUMENT && m2 == -1.0 &&
              s2 == -1.0, "subset larger than a set");
        CHECK(strstr(vton_last_error_message(), "subset_size") != NULL, "message: %s", vton_last_error_message());
        CHECK(vton_fid_compute_kid(fid, 0, size, &m2, &s2) == VTON_STATUS_INVALID_ARGUMENT && m2 == -1.0, "0 subsets");
        CHECK(vton_fid_compute_kid(fid, (size_t)-1, size, &m2, &s2) == VTON_STATUS_INVALID_ARGUMENT && m2 == -1.0,
              "SIZE_MAX subsets");
        CHECK(vton_fid_compute_kid(fid, VTON_KID_MAX_DRAWS / size + 1, size, &m2, &s2) == VTON_STATUS_INVALID_ARGUMENT &&
              m2 == -1.0, "too many draws");
        CHECK(strstr(vton_last_error_message(), "draws") != NULL, "message: %s", vton_last_error_message());
        CHECK(vton_fid_compute_kid(fid, subsets, 1, &m2, &s2) == VTON_STATUS_INVALID_ARGUMENT && m2 == -1.0,
              "subset size 1");
        /* A failed update leaves the sets as they were: the same FID. */
        CHECK(vton_fid_update(fid, NULL, h, w, 1) == VTON_STATUS_NULL_ARGUMENT, "NULL image");
        double again = -1.0;
        CHECK(vton_fid_compute(fid, &again) == VTON_STATUS_OK && again == out, "FID after a failed update %f vs %f",
              again, out);
        free(real);
        free(fake);
    } else {
        /* Two small images per set through the network: every path once, cheaply. */
        static unsigned char img[4][40 * 32 * 3];
        for (int k = 0; k < 4; k++)
            for (size_t i = 0; i < sizeof img[k]; i++) img[k][i] = (unsigned char)(i * (31 + 2 * k) + (k >= 2 ? 90 : 0));
        CHECK(vton_fid_update(fid, img[0], 40, 32, 1) == VTON_STATUS_OK, "update: %s", vton_last_error_message());
        CHECK(vton_fid_update(fid, img[2], 40, 32, 0) == VTON_STATUS_OK, "update: %s", vton_last_error_message());
        CHECK(vton_fid_compute(fid, &out) == VTON_STATUS_INVALID_ARGUMENT && out == -1.0, "FID of 1 + 1 images");
        CHECK(vton_fid_update(fid, img[1], 40, 32, 1) == VTON_STATUS_OK, "update: %s", vton_last_error_message());
        CHECK(vton_fid_update(fid, img[3], 40, 32, 0) == VTON_STATUS_OK, "update: %s", vton_last_error_message());
        CHECK(vton_fid_compute(fid, &out) == VTON_STATUS_OK && isfinite(out) && out > 0, "FID of 2 + 2 images: %f (%s)",
              out, vton_last_error_message());
        CHECK(vton_fid_compute_kid(fid, 3, 2, &mean, &sd) == VTON_STATUS_OK && isfinite(mean) && sd >= 0,
              "KID of 2 + 2 images: %f +- %f (%s)", mean, sd, vton_last_error_message());
        double m2 = -1.0, s2 = -1.0;
        CHECK(vton_fid_compute_kid(fid, 3, 3, &m2, &s2) == VTON_STATUS_INVALID_ARGUMENT && m2 == -1.0 && s2 == -1.0,
              "subset larger than a set");
    }
    vton_fid_free(fid);
    vton_fid_free(NULL);

    vton_fid *bad = (vton_fid *)&failures, *q = bad;
    CHECK(vton_fid_load(NULL, &q) == VTON_STATUS_NULL_ARGUMENT && q == bad, "NULL checkpoint");
    CHECK(strstr(vton_last_error_message(), "inception_checkpoint") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_fid_load(weights, NULL) == VTON_STATUS_NULL_ARGUMENT, "NULL out");
    s = vton_fid_load("/nonexistent/pt_inception.pth", &q);
    CHECK(s == VTON_STATUS_FILE_NOT_FOUND && q == bad, "missing checkpoint: status %d (%s)", (int)s,
          vton_last_error_message());
    char lpips_weights[1024];
    snprintf(lpips_weights, sizeof lpips_weights, "%s/metrics_weights_lpips_alex.safetensors", dir);
    s = vton_fid_load(lpips_weights, &q);
    CHECK(s == VTON_STATUS_CHECKPOINT && q == bad, "LPIPS weights as Inception: status %d (%s)", (int)s,
          vton_last_error_message());
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures/metrics";
    /* "leak" mode (under valgrind): the FID / KID reference check (22 Inception passes) is
     * replaced by two small images per set; every function and error path still runs. */
    int run_fid = !(argc > 2 && strcmp(argv[2], "leak") == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/c/reference.txt", dir);
    read_references(path);

    check_pixel_errors();
    vton_lpips *lpips = check_lpips(dir);
    check_pair(dir, 0, lpips);
    check_pair(dir, 6, lpips);
    vton_lpips_free(lpips);
    check_fid(dir, run_fid);

    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("C metrics test: all checks passed%s\n", run_fid ? "" : " (FID / KID reference skipped)");
    return 0;
}
