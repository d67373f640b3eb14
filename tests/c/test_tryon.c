/* C surface test of libvton: geometric try-on on a bundled example, error paths, frees.
 * Build and run: see scripts/test-all.sh (runs it under valgrind's leak check too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vton.h"

static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); failures++; } } while (0)

static vton_image *read_or_die(const char *path) {
    vton_image *img = NULL;
    vton_status s = vton_image_read(path, &img);
    if (s != VTON_STATUS_OK) { fprintf(stderr, "cannot read %s: %s\n", path, vton_last_error_message()); exit(2); }
    return img;
}

/* Grey mask from an RGB image's red channel. */
static unsigned char *grey_of(const vton_image *img) {
    size_t n = (size_t)vton_image_width(img) * vton_image_height(img);
    unsigned char *g = malloc(n);
    const unsigned char *d = vton_image_data(img);
    for (size_t i = 0; i < n; i++) g[i] = d[i * 3];
    return g;
}

/* Progress callback: counts calls; cancels when the count reaches *user (if > 0). */
static int calls = 0;
static int32_t on_progress(uint32_t step, uint32_t total, void *user) {
    int stop_at = *(int *)user;
    calls++;
    if (step < 1 || step > total) failures++;
    return stop_at > 0 && (int)step >= stop_at;
}

int main(int argc, char **argv) {
    const char *ex = argc > 1 ? argv[1] : "examples";
    const char *outdir = argc > 2 ? argv[2] : "target";
    const char *weights = argc > 3 ? argv[3] : "tests/fixtures/tiny_inpaint_pipeline";
    /* "leak" mode (under valgrind): the same calls with the least work. */
    int leak_mode = argc > 4 && strcmp(argv[4], "leak") == 0;
    char p[1024];
    printf("libvton %s\n", vton_version());

    snprintf(p, sizeof p, "%s/person/openvto_ai_avatar1_upper.png", ex);
    vton_image *person = read_or_die(p);
    snprintf(p, sizeof p, "%s/person/openvto_ai_avatar1_upper_mask.png", ex);
    vton_image *pmask = read_or_die(p);
    snprintf(p, sizeof p, "%s/garment/openvto_shirt4_front.png", ex);
    vton_image *garment = read_or_die(p);
    unsigned int pw = vton_image_width(person), ph = vton_image_height(person);
    CHECK(pw == 384 && ph == 512, "person size %ux%u", pw, ph);
    unsigned char *pm = grey_of(pmask);

    vton_inputs *in = NULL;
    CHECK(vton_inputs_new(&in) == VTON_STATUS_OK, "inputs_new");
    CHECK(vton_inputs_set_person_rgb(in, vton_image_data(person), pw, ph) == VTON_STATUS_OK, "set person");
    CHECK(vton_inputs_set_person_mask(in, pm, pw, ph) == VTON_STATUS_OK, "set person mask");

    /* Running before the garment is set is an error with a message (keypoints are
     * optional: estimated when not set, see test_estimate.c). */
    vton_result *res = NULL;
    vton_status s = vton_try_on_geometric(in, &res);
    CHECK(s == VTON_STATUS_INVALID_ARGUMENT && res == NULL, "no garment: status %d", (int)s);
    CHECK(strstr(vton_last_error_message(), "garment") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_inputs_set_garment_rgb(in, vton_image_data(garment), vton_image_width(garment), vton_image_height(garment)) == VTON_STATUS_OK, "set garment");

    /* Missing file -> FILE_NOT_FOUND, NULL -> NULL_ARGUMENT. */
    CHECK(vton_inputs_read_keypoints(in, "/nonexistent/k.json") == VTON_STATUS_FILE_NOT_FOUND, "missing file");
    CHECK(vton_inputs_read_keypoints(in, NULL) == VTON_STATUS_NULL_ARGUMENT, "NULL path");
    CHECK(vton_try_on_geometric(NULL, &res) == VTON_STATUS_NULL_ARGUMENT, "NULL inputs");

    /* Keypoints without the shoulders -> MISSING_KEYPOINTS. */
    float none[25 * 3];
    memset(none, 0, sizeof none);
    CHECK(vton_inputs_set_keypoints(in, none, 25) == VTON_STATUS_OK, "set zero keypoints");
    s = vton_try_on_geometric(in, &res);
    CHECK(s == VTON_STATUS_MISSING_KEYPOINTS, "zero keypoints: status %d (%s)", (int)s, vton_last_error_message());
    CHECK(vton_inputs_set_keypoints(in, none, 7) == VTON_STATUS_INVALID_ARGUMENT, "7 keypoints");

    snprintf(p, sizeof p, "%s/person/openvto_ai_avatar1_upper_keypoints.json", ex);
    CHECK(vton_inputs_read_keypoints(in, p) == VTON_STATUS_OK, "read keypoints: %s", vton_last_error_message());
    s = vton_try_on_geometric(in, &res);
    CHECK(s == VTON_STATUS_OK && res != NULL, "try-on: %s", vton_last_error_message());
    if (res) {
        vton_image *img = NULL, *wm = NULL;
        CHECK(vton_result_get(res, VTON_OUTPUT_IMAGE, &img) == VTON_STATUS_OK, "get image");
        CHECK(vton_result_get(res, VTON_OUTPUT_WARPED_MASK, &wm) == VTON_STATUS_OK, "get warped mask");
        CHECK(vton_image_width(img) == pw && vton_image_height(img) == ph, "result size");
        const unsigned char *a = vton_image_data(img), *b = vton_image_data(person), *m = vton_image_data(wm);
        size_t changed = 0, covered = 0, n = (size_t)pw * ph;
        for (size_t i = 0; i < n; i++) {
            if (m[i * 3] >= 128) covered++;
            if (abs(a[i * 3] - b[i * 3]) + abs(a[i * 3 + 1] - b[i * 3 + 1]) + abs(a[i * 3 + 2] - b[i * 3 + 2]) > 30) changed++;
        }
        CHECK(covered > n / 20, "warped mask covers %zu of %zu pixels", covered, n);
        CHECK(changed > n / 20, "only %zu pixels changed", changed);
        /* Top-left corner (background) is untouched. */
        CHECK(memcmp(a, b, 3) == 0, "background pixel changed");
        snprintf(p, sizeof p, "%s/c_tryon.png", outdir);
        CHECK(vton_image_write_png(img, p) == VTON_STATUS_OK, "write png: %s", vton_last_error_message());
        vton_image_free(img);
        vton_image_free(wm);
    }
    vton_result_free(res);
    /* A person mask of another size than the photo -> SIZE_MISMATCH, out untouched. */
    /* Diffusion try-on on the tiny random pipeline, with progress and cancel. */
    {
        vton_pipeline *pipe = NULL;
        CHECK(vton_pipeline_load(VTON_METHOD_CATVTON, "/nonexistent", NULL, &pipe) == VTON_STATUS_FILE_NOT_FOUND
              && pipe == NULL, "load from a missing folder");
        CHECK(vton_pipeline_load(VTON_METHOD_CATVTON, NULL, NULL, &pipe) == VTON_STATUS_NULL_ARGUMENT, "NULL dir");
        s = vton_pipeline_load(VTON_METHOD_CATVTON, weights, NULL, &pipe);
        CHECK(s == VTON_STATUS_OK && pipe != NULL, "load pipeline: %s", vton_last_error_message());
        vton_diffusion_params prm = vton_diffusion_params_default();
        prm.steps = leak_mode ? 2 : 3; prm.height = leak_mode ? 16 : 64; prm.width = leak_mode ? 16 : 48; prm.seed = 9;
        int stop_at = 0;
        vton_result *dr = NULL;
        calls = 0;
        s = vton_try_on_diffusion(pipe, in, &prm, on_progress, &stop_at, &dr);
        CHECK(s == VTON_STATUS_OK && dr != NULL, "diffusion try-on: %s", vton_last_error_message());
        CHECK(calls == (int)prm.steps, "progress called %d times", calls);
        vton_image *di = NULL;
        if (dr) {
            CHECK(vton_result_get(dr, VTON_OUTPUT_IMAGE, &di) == VTON_STATUS_OK, "get diffusion image");
            CHECK(vton_image_width(di) == pw && vton_image_height(di) == ph, "diffusion result size");
        }
        stop_at = leak_mode ? 1 : 2; calls = 0;
        vton_result *cr = NULL;
        s = vton_try_on_diffusion(pipe, in, &prm, on_progress, &stop_at, &cr);
        CHECK(s == VTON_STATUS_CANCELLED && cr == NULL && calls == stop_at, "cancel: status %d after %d calls", (int)s, calls);
        prm.steps = 0;
        CHECK(vton_try_on_diffusion(pipe, in, &prm, NULL, NULL, &cr) == VTON_STATUS_INVALID_ARGUMENT, "0 steps");
        CHECK(vton_try_on_diffusion(pipe, in, NULL, NULL, NULL, &cr) == VTON_STATUS_NULL_ARGUMENT, "NULL params");
        /* The same pipeline with bfloat16 weights: the same size of result, close to the
           float32 one (the rounding moves the tiny random model's output by a few 1e-3). */
        vton_pipeline *half = NULL;
        s = vton_pipeline_load_with(VTON_METHOD_CATVTON, weights, NULL, "bfloat16", NULL, &half);
        CHECK(s == VTON_STATUS_OK && half != NULL, "load bf16 pipeline: %s", vton_last_error_message());
        prm.steps = leak_mode ? 2 : 3;
        vton_result *hr = NULL;
        s = vton_try_on_diffusion(half, in, &prm, NULL, NULL, &hr);
        CHECK(s == VTON_STATUS_OK && hr != NULL, "bf16 diffusion try-on: %s", vton_last_error_message());
        vton_image *hi = NULL;
        if (hr && di) {
            CHECK(vton_result_get(hr, VTON_OUTPUT_IMAGE, &hi) == VTON_STATUS_OK, "get bf16 image");
            CHECK(vton_image_width(hi) == pw && vton_image_height(hi) == ph, "bf16 result size");
            const unsigned char *a = vton_image_data(di), *b = vton_image_data(hi);
            double mad = 0;
            size_t n = (size_t)pw * ph * 3;
            for (size_t i = 0; i < n; i++) mad += abs((int)a[i] - (int)b[i]);
            mad /= (double)n;
            CHECK(mad < 0.5, "bf16 result differs by %.3f levels on average", mad);
        }
        vton_image_free(hi);
        vton_result_free(hr);
        vton_pipeline_free(half);
        vton_pipeline *bad = NULL;
        CHECK(vton_pipeline_load_with(VTON_METHOD_CATVTON, weights, NULL, "int8", NULL, &bad) == VTON_STATUS_INVALID_ARGUMENT
              && bad == NULL && strstr(vton_last_error_message(), "int8"), "bad dtype: %s", vton_last_error_message());
        CHECK(vton_pipeline_load_with(VTON_METHOD_INPAINT, weights, NULL, NULL, "fp16", &bad) != VTON_STATUS_OK
              && bad == NULL && strstr(vton_last_error_message(), "fp16"), "missing variant: %s", vton_last_error_message());
        CHECK(vton_pipeline_load_with(VTON_METHOD_DCI_VITON, weights, NULL, NULL, NULL, &bad) == VTON_STATUS_INVALID_ARGUMENT,
              "dci through load_with");
        vton_image_free(di);
        vton_result_free(dr);
        vton_pipeline_free(pipe);
        vton_pipeline_free(NULL);
    }
    CHECK(vton_inputs_set_person_mask(in, pm, pw / 2, ph / 2) == VTON_STATUS_OK, "set small mask");
    vton_result *res2 = NULL;
    s = vton_try_on_geometric(in, &res2);
    CHECK(s == VTON_STATUS_SIZE_MISMATCH && res2 == NULL, "size mismatch: status %d", (int)s);
    /* NULL-safe frees. */
    vton_result_free(NULL);
    vton_image_free(NULL);
    vton_inputs_free(NULL);
    vton_inputs_free(in);
    vton_image_free(person);
    vton_image_free(pmask);
    vton_image_free(garment);
    free(pm);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("C test: all checks passed\n");
    return 0;
}
