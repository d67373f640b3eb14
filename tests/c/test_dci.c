/* C surface test of DCI-VITON through the diffusion entry points: vton_pipeline_load
 * (VTON_METHOD_DCI_VITON) on a weights folder made of the random-weight test networks
 * (scripts/test-all.sh copies them into it: a checkpoint named *warping*, the U-Net
 * checkpoint, vae/), a 2-step run on the tiny VITON-HD sample, determinism by seed,
 * progress and cancel, missing inputs, bad folders, frees.
 * Usage: test_dci FIXTURES WEIGHTS_DIR [leak] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vton.h"

static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); failures++; } } while (0)
#define MSG_HAS(needle) (strstr(vton_last_error_message(), (needle)) != NULL)

static vton_image *read_or_die(const char *path) {
    vton_image *img = NULL;
    if (vton_image_read(path, &img) != VTON_STATUS_OK) {
        fprintf(stderr, "cannot read %s: %s\n", path, vton_last_error_message());
        exit(2);
    }
    return img;
}

static unsigned char *grey_of(const vton_image *img) {
    size_t n = (size_t)vton_image_width(img) * vton_image_height(img);
    unsigned char *g = malloc(n);
    const unsigned char *d = vton_image_data(img);
    for (size_t i = 0; i < n; i++) g[i] = d[i * 3];
    return g;
}

#define W(img) vton_image_width(img)
#define H(img) vton_image_height(img)

/* Counts calls, checks (step, total); cancels at step *user when *user > 0. */
static int calls = 0;
static int32_t on_progress(uint32_t step, uint32_t total, void *user) {
    int stop_at = *(int *)user;
    calls++;
    if (step < 1 || step > total || total != 2) failures++;
    return stop_at > 0 && (int)step >= stop_at;
}

/* Runs the try-on; on success returns the result image (caller frees), else NULL. */
static vton_image *run(vton_pipeline *pipe, const vton_inputs *in, const vton_diffusion_params *prm,
                       vton_result **keep) {
    vton_result *res = NULL;
    int no_stop = 0;
    calls = 0;
    vton_status s = vton_try_on_diffusion(pipe, in, prm, on_progress, &no_stop, &res);
    CHECK(s == VTON_STATUS_OK && res != NULL, "dci try-on: status %d: %s", (int)s, vton_last_error_message());
    CHECK(calls == 2, "progress called %d times for 2 steps", calls);
    if (!res) return NULL;
    vton_image *img = NULL;
    CHECK(vton_result_get(res, VTON_OUTPUT_IMAGE, &img) == VTON_STATUS_OK, "get image");
    if (keep) *keep = res; else vton_result_free(res);
    return img;
}

static int same_pixels(const vton_image *a, const vton_image *b) {
    return a && b && W(a) == W(b) && H(a) == H(b) &&
           memcmp(vton_image_data(a), vton_image_data(b), (size_t)W(a) * H(a) * 3) == 0;
}

int main(int argc, char **argv) {
    const char *fx = argc > 1 ? argv[1] : "tests/fixtures";
    const char *weights = argc > 2 ? argv[2] : "target/ctest/dci_weights";
    /* "leak" mode (under valgrind): the runs that only repeat allocation paths are skipped. */
    int leak_mode = argc > 3 && strcmp(argv[3], "leak") == 0;
    char p[1024];
    vton_pipeline *pipe = NULL;
    vton_status s;

    /* Bad folders and arguments: each a status and a message naming the problem. */
    s = vton_pipeline_load(VTON_METHOD_DCI_VITON, "/nonexistent/dci", NULL, &pipe);
    CHECK(s == VTON_STATUS_FILE_NOT_FOUND && pipe == NULL, "missing dir: status %d", (int)s);
    CHECK(MSG_HAS("/nonexistent/dci"), "message: %s", vton_last_error_message());
    snprintf(p, sizeof p, "%s/vitonhd_tiny", fx); /* a folder with no checkpoints */
    s = vton_pipeline_load(VTON_METHOD_DCI_VITON, p, NULL, &pipe);
    CHECK(s == VTON_STATUS_INVALID_ARGUMENT && pipe == NULL, "no checkpoints: status %d", (int)s);
    CHECK(MSG_HAS("warping"), "message: %s", vton_last_error_message());
    s = vton_pipeline_load(VTON_METHOD_DCI_VITON, weights, "attn.safetensors", &pipe);
    CHECK(s == VTON_STATUS_INVALID_ARGUMENT && pipe == NULL, "attn given: status %d", (int)s);
    CHECK(MSG_HAS("attn_checkpoint"), "message: %s", vton_last_error_message());
    CHECK(vton_pipeline_load(VTON_METHOD_DCI_VITON, NULL, NULL, &pipe) == VTON_STATUS_NULL_ARGUMENT, "NULL dir");
    CHECK(vton_pipeline_load_dci_viton(weights, 1, NULL) == VTON_STATUS_NULL_ARGUMENT, "NULL out");
    /* The plain loader uses the original's 8 GroupNorm groups; the test U-Net is 1
     * channel wide at its narrowest, so that is a checkpoint error naming GroupNorm. */
    s = vton_pipeline_load(VTON_METHOD_DCI_VITON, weights, NULL, &pipe);
    CHECK(s == VTON_STATUS_CHECKPOINT && pipe == NULL, "8 groups on the test U-Net: status %d: %s", (int)s,
          vton_last_error_message());
    CHECK(MSG_HAS("GroupNorm"), "message: %s", vton_last_error_message());
    s = vton_pipeline_load_dci_viton(weights, 1, &pipe);
    CHECK(s == VTON_STATUS_OK && pipe != NULL, "load dci-viton: %s", vton_last_error_message());
    if (!pipe) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }

    /* The tiny VITON-HD sample. */
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/image/00001_00.jpg", fx);
    vton_image *person = read_or_die(p);
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/cloth/00001_00.jpg", fx);
    vton_image *cloth = read_or_die(p);
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/cloth-mask/00001_00.jpg", fx);
    vton_image *cmask = read_or_die(p);
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/image-densepose/00001_00.jpg", fx);
    vton_image *dp = read_or_die(p);
    unsigned char *cm = grey_of(cmask);
    vton_inputs *in = NULL;
    CHECK(vton_inputs_new(&in) == VTON_STATUS_OK, "inputs_new");
    CHECK(vton_inputs_set_person_rgb(in, vton_image_data(person), W(person), H(person)) == VTON_STATUS_OK, "person");
    CHECK(vton_inputs_set_garment_rgb(in, vton_image_data(cloth), W(cloth), H(cloth)) == VTON_STATUS_OK, "cloth");
    CHECK(vton_inputs_set_garment_mask(in, cm, W(cmask), H(cmask)) == VTON_STATUS_OK, "cloth mask");
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/openpose_json/00001_00_keypoints.json", fx);
    CHECK(vton_inputs_read_keypoints(in, p) == VTON_STATUS_OK, "keypoints: %s", vton_last_error_message());

    vton_diffusion_params prm = vton_diffusion_params_default();
    prm.steps = 2;
    prm.height = 64;
    prm.width = 64;
    prm.seed = 7;
    vton_result *res = NULL;
    /* No DensePose, then no parse: INVALID_ARGUMENT naming the input and its setter. */
    s = vton_try_on_diffusion(pipe, in, &prm, NULL, NULL, &res);
    CHECK(s == VTON_STATUS_INVALID_ARGUMENT && res == NULL, "no densepose: status %d", (int)s);
    CHECK(MSG_HAS("DensePose") && MSG_HAS("vton_inputs_set_densepose_rgb"), "message: %s",
          vton_last_error_message());
    CHECK(vton_inputs_set_densepose_rgb(in, vton_image_data(dp), W(dp), H(dp)) == VTON_STATUS_OK, "densepose");
    s = vton_try_on_diffusion(pipe, in, &prm, NULL, NULL, &res);
    CHECK(s == VTON_STATUS_INVALID_ARGUMENT && res == NULL, "no parse: status %d", (int)s);
    CHECK(MSG_HAS("parse") && MSG_HAS("vton_inputs_read_parse"), "message: %s", vton_last_error_message());
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/image-parse-v3/00001_00.png", fx);
    CHECK(vton_inputs_read_parse(in, p) == VTON_STATUS_OK, "parse: %s", vton_last_error_message());
    /* DCI-VITON is square. */
    prm.width = 48;
    s = vton_try_on_diffusion(pipe, in, &prm, NULL, NULL, &res);
    CHECK(s == VTON_STATUS_INVALID_ARGUMENT && res == NULL && MSG_HAS("square"), "non-square: status %d: %s",
          (int)s, vton_last_error_message());
    prm.width = 64;

    /* A 2-step run: the image at the diffusion size, the intermediates. */
    vton_result *kept = NULL;
    vton_image *a = run(pipe, in, &prm, &kept);
    CHECK(a && W(a) == 64 && H(a) == 64, "image size %ux%u", a ? W(a) : 0, a ? H(a) : 0);
    if (kept) {
        vton_image *wg = NULL, *ai = NULL, *am = NULL, *wm = NULL;
        CHECK(vton_result_get(kept, VTON_OUTPUT_WARPED_GARMENT, &wg) == VTON_STATUS_OK, "warped garment");
        CHECK(wg && W(wg) == 64 && H(wg) == 64, "warped size (the warping runs at min(256, 64))");
        CHECK(vton_result_get(kept, VTON_OUTPUT_AGNOSTIC_IMAGE, &ai) == VTON_STATUS_OK, "agnostic image");
        CHECK(ai && W(ai) == W(person) && H(ai) == H(person), "agnostic at the photo's size");
        CHECK(vton_result_get(kept, VTON_OUTPUT_AGNOSTIC_MASK, &am) == VTON_STATUS_OK, "agnostic mask");
        CHECK(am && W(am) == W(person) && H(am) == H(person), "agnostic mask at the photo's size");
        CHECK(vton_result_get(kept, VTON_OUTPUT_WARPED_MASK, &wm) == VTON_STATUS_INVALID_ARGUMENT && wm == NULL,
              "no warped mask");
        vton_image_free(wg); vton_image_free(ai); vton_image_free(am);
        vton_result_free(kept);
    }
    /* The same seed gives the same image, bit for bit. */
    vton_image *b = run(pipe, in, &prm, NULL);
    CHECK(same_pixels(a, b), "same seed, different image");
    if (!leak_mode) {
        /* Another seed gives another image (the start noise and posterior sample differ). */
        prm.seed = 8;
        vton_image *c = run(pipe, in, &prm, NULL);
        CHECK(c && !same_pixels(a, c), "seed 8 gave seed 7's image");
        vton_image_free(c);
        prm.seed = 7;
        /* Keypoints (bundled pose models) and garment mask estimated when not set. */
        vton_inputs *est = NULL;
        CHECK(vton_inputs_new(&est) == VTON_STATUS_OK, "inputs_new");
        vton_inputs_set_person_rgb(est, vton_image_data(person), W(person), H(person));
        vton_inputs_set_garment_rgb(est, vton_image_data(cloth), W(cloth), H(cloth));
        vton_inputs_set_densepose_rgb(est, vton_image_data(dp), W(dp), H(dp));
        CHECK(vton_inputs_read_parse(est, p) == VTON_STATUS_OK, "parse: %s", vton_last_error_message());
        vton_image *e = run(pipe, est, &prm, NULL);
        CHECK(e && W(e) == 64 && H(e) == 64, "estimated-inputs run");
        vton_image_free(e);
        vton_inputs_free(est);
    }

    /* Cancel from the progress callback at step 1: CANCELLED, no result. */
    int stop_at = 1;
    calls = 0;
    res = NULL;
    s = vton_try_on_diffusion(pipe, in, &prm, on_progress, &stop_at, &res);
    CHECK(s == VTON_STATUS_CANCELLED && res == NULL && calls == 1, "cancel: status %d after %d calls", (int)s,
          calls);
    CHECK(MSG_HAS("cancel"), "message: %s", vton_last_error_message());

    vton_pipeline_free(pipe);
    vton_pipeline_free(NULL);
    CHECK(vton_try_on_diffusion(NULL, in, &prm, NULL, NULL, &res) == VTON_STATUS_NULL_ARGUMENT, "NULL pipeline");
    vton_image_free(a); vton_image_free(b);
    vton_inputs_free(in);
    vton_image_free(person); vton_image_free(cloth); vton_image_free(cmask); vton_image_free(dp);
    free(cm);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("C DCI-VITON test: all checks passed\n");
    return 0;
}
