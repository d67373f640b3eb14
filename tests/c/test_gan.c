/* C surface test of libvton's GAN try-ons: CP-VTON+ on a bundled photo and HR-VITON on
 * the tiny VITON-HD set, loaded from the test checkpoints (random reduced-width weights),
 * with error paths and frees. Build and run: see scripts/test-all.sh (valgrind too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vton.h"

static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); failures++; } } while (0)

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

int main(int argc, char **argv) {
    const char *ex = argc > 1 ? argv[1] : "examples";
    const char *fx = argc > 2 ? argv[2] : "tests/fixtures";
    int leak_mode = argc > 3 && strcmp(argv[3], "leak") == 0;
    char p[1024], q[1024];

    /* CP-VTON+ on a photo with a person mask (no parse). */
    snprintf(p, sizeof p, "%s/person/mpl_grace_hopper.png", ex);
    vton_image *person = read_or_die(p);
    snprintf(p, sizeof p, "%s/person/mpl_grace_hopper_mask.png", ex);
    vton_image *pmask = read_or_die(p);
    snprintf(p, sizeof p, "%s/garment/openvto_shirt1_front.png", ex);
    vton_image *cloth = read_or_die(p);
    snprintf(p, sizeof p, "%s/garment/openvto_shirt1_front_mask.png", ex);
    vton_image *cmask = read_or_die(p);
    unsigned char *pm = grey_of(pmask), *cm = grey_of(cmask);

    vton_inputs *in = NULL;
    CHECK(vton_inputs_new(&in) == VTON_STATUS_OK, "inputs_new");
    CHECK(vton_inputs_set_person_rgb(in, vton_image_data(person), W(person), H(person)) == VTON_STATUS_OK, "person");
    CHECK(vton_inputs_set_person_mask(in, pm, W(pmask), H(pmask)) == VTON_STATUS_OK, "person mask");
    CHECK(vton_inputs_set_garment_rgb(in, vton_image_data(cloth), W(cloth), H(cloth)) == VTON_STATUS_OK, "cloth");
    snprintf(p, sizeof p, "%s/person/mpl_grace_hopper_keypoints.json", ex);
    CHECK(vton_inputs_read_keypoints(in, p) == VTON_STATUS_OK, "keypoints");

    vton_gan_pipeline *cp = NULL;
    vton_gan_params prm = vton_gan_params_default(VTON_GAN_CPVTON);
    CHECK(prm.fine_height == 256 && prm.fine_width == 192 && prm.ngf == 64, "cpvton defaults");
    snprintf(p, sizeof p, "%s/gan/cpvton_gmm.pth", fx);
    snprintf(q, sizeof q, "%s/gan/cpvton_tom.pth", fx);
    /* Released width against the reduced-width test checkpoint: a checkpoint error naming the key. */
    vton_status s = vton_gan_pipeline_load(VTON_GAN_CPVTON, p, q, &prm, &cp);
    CHECK(s == VTON_STATUS_CHECKPOINT && cp == NULL, "ngf mismatch: status %d", (int)s);
    CHECK(strstr(vton_last_error_message(), "model.model.0.weight") != NULL, "message: %s", vton_last_error_message());
    /* Swapped files: missing keys. */
    CHECK(vton_gan_pipeline_load(VTON_GAN_CPVTON, q, p, &prm, &cp) == VTON_STATUS_CHECKPOINT, "swapped files");
    CHECK(vton_gan_pipeline_load(VTON_GAN_CPVTON, "/nonexistent.pth", q, &prm, &cp) == VTON_STATUS_FILE_NOT_FOUND,
          "missing file");
    CHECK(vton_gan_pipeline_load(VTON_GAN_CPVTON, NULL, q, &prm, &cp) == VTON_STATUS_NULL_ARGUMENT, "NULL path");
    snprintf(q, sizeof q, "%s/malicious.pth", fx);
    CHECK(vton_gan_pipeline_load(VTON_GAN_CPVTON, p, q, &prm, &cp) == VTON_STATUS_CHECKPOINT, "malicious pickle");
    prm.ngf = 8;
    snprintf(q, sizeof q, "%s/gan/cpvton_tom.pth", fx);
    s = vton_gan_pipeline_load(VTON_GAN_CPVTON, p, q, &prm, &cp);
    CHECK(s == VTON_STATUS_OK && cp != NULL, "load cpvton: %s", vton_last_error_message());

    vton_result *res = NULL;
    s = vton_try_on_gan(cp, in, &res);
    CHECK(s == VTON_STATUS_INVALID_ARGUMENT && res == NULL, "no garment mask: %d", (int)s);
    CHECK(strstr(vton_last_error_message(), "garment mask") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_inputs_set_garment_mask(in, cm, W(cmask), H(cmask)) == VTON_STATUS_OK, "cloth mask");
    s = vton_try_on_gan(cp, in, &res);
    CHECK(s == VTON_STATUS_OK && res != NULL, "cpvton try-on: %s", vton_last_error_message());
    if (res) {
        vton_image *img = NULL, *wm = NULL, *ag = NULL;
        CHECK(vton_result_get(res, VTON_OUTPUT_IMAGE, &img) == VTON_STATUS_OK, "get image");
        CHECK(W(img) == 192 && H(img) == 256, "cpvton size %ux%u", W(img), H(img));
        CHECK(vton_result_get(res, VTON_OUTPUT_WARPED_MASK, &wm) == VTON_STATUS_OK, "get warped mask");
        CHECK(vton_result_get(res, VTON_OUTPUT_AGNOSTIC_MASK, &ag) == VTON_STATUS_INVALID_ARGUMENT && ag == NULL,
              "absent output");
        vton_image_free(img);
        vton_image_free(wm);
    }
    vton_result_free(res);
    /* A LIP parse of another size than the photo: SIZE_MISMATCH before any compute. */
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/image-parse-v3/00001_00.png", fx);
    CHECK(vton_inputs_read_parse(in, p) == VTON_STATUS_OK, "read parse: %s", vton_last_error_message());
    res = NULL;
    s = vton_try_on_gan(cp, in, &res);
    CHECK(s == VTON_STATUS_SIZE_MISMATCH && res == NULL, "parse size: status %d", (int)s);
    vton_gan_pipeline_free(cp);

    /* HR-VITON on the tiny VITON-HD set. */
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/cloth/00002_00.jpg", fx);
    vton_image *hc = read_or_die(p);
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/cloth-mask/00002_00.jpg", fx);
    vton_image *hcm = read_or_die(p);
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/image-densepose/00001_00.jpg", fx);
    vton_image *dp = read_or_die(p);
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/agnostic-v3.2/00001_00.jpg", fx);
    vton_image *ag = read_or_die(p);
    unsigned char *hm = grey_of(hcm);
    vton_inputs *hin = NULL;
    CHECK(vton_inputs_new(&hin) == VTON_STATUS_OK, "inputs_new");
    CHECK(vton_inputs_set_garment_rgb(hin, vton_image_data(hc), W(hc), H(hc)) == VTON_STATUS_OK, "hr cloth");
    CHECK(vton_inputs_set_garment_mask(hin, hm, W(hcm), H(hcm)) == VTON_STATUS_OK, "hr cloth mask");
    CHECK(vton_inputs_set_densepose_rgb(hin, vton_image_data(dp), W(dp), H(dp)) == VTON_STATUS_OK, "densepose");
    CHECK(vton_inputs_set_agnostic_rgb(hin, vton_image_data(ag), W(ag), H(ag)) == VTON_STATUS_OK, "agnostic");
    CHECK(vton_inputs_read_parse_agnostic(hin, "/nonexistent.png") == VTON_STATUS_FILE_NOT_FOUND, "missing parse");
    unsigned char bad_labels[4] = {0, 1, 25, 3};
    CHECK(vton_inputs_set_parse_agnostic(hin, bad_labels, 2, 2) == VTON_STATUS_INVALID_ARGUMENT, "label 25");

    vton_gan_params hp = vton_gan_params_default(VTON_GAN_HRVITON);
    CHECK(hp.fine_height == 1024 && hp.fine_width == 768 && hp.tocg_ngf == 96, "hrviton defaults");
    hp.tocg_ngf = 8; hp.ngf = 2; hp.fine_height = 256; hp.fine_width = 128; hp.use_noise = 0;
    vton_gan_pipeline *hr = NULL;
    snprintf(p, sizeof p, "%s/gan/hrviton_tocg.pth", fx);
    snprintf(q, sizeof q, "%s/gan/hrviton_gen.pth", fx);
    s = vton_gan_pipeline_load(VTON_GAN_HRVITON, p, q, &hp, &hr);
    CHECK(s == VTON_STATUS_OK && hr != NULL, "load hrviton: %s", vton_last_error_message());
    vton_result *hres = NULL;
    s = vton_try_on_gan(hr, hin, &hres);
    CHECK(s == VTON_STATUS_INVALID_ARGUMENT && hres == NULL, "no parse-agnostic: %d", (int)s);
    snprintf(p, sizeof p, "%s/vitonhd_tiny/test/image-parse-agnostic-v3.2/00001_00.png", fx);
    CHECK(vton_inputs_read_parse_agnostic(hin, p) == VTON_STATUS_OK, "parse-agnostic: %s", vton_last_error_message());
    /* Under valgrind ("leak" mode) the HR-VITON forward pass is skipped: it runs the same
     * allocation paths as CP-VTON+'s (minutes at valgrind speed); loads, input setters,
     * errors and frees still run. */
    if (!leak_mode) {
        s = vton_try_on_gan(hr, hin, &hres);
        CHECK(s == VTON_STATUS_OK && hres != NULL, "hrviton try-on: %s", vton_last_error_message());
    }
    if (hres) {
        vton_image *img = NULL;
        CHECK(vton_result_get(hres, VTON_OUTPUT_IMAGE, &img) == VTON_STATUS_OK, "get image");
        CHECK(W(img) == 128 && H(img) == 256, "hrviton size %ux%u", W(img), H(img));
        vton_image_free(img);
    }
    vton_result_free(hres);
    vton_gan_pipeline_free(hr);
    vton_gan_pipeline_free(NULL);
    CHECK(vton_try_on_gan(NULL, hin, &hres) == VTON_STATUS_NULL_ARGUMENT, "NULL pipeline");

    vton_inputs_free(in);
    vton_inputs_free(hin);
    vton_image_free(person); vton_image_free(pmask); vton_image_free(cloth); vton_image_free(cmask);
    vton_image_free(hc); vton_image_free(hcm); vton_image_free(dp); vton_image_free(ag);
    free(pm); free(cm); free(hm);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("C GAN test: all checks passed\n");
    return 0;
}
