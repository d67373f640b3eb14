/* C surface test of libvton's pose estimation: vton_estimate_pose on a bundled photo
 * (keypoints against the example's OpenPose JSON, mask, landmarks), a try-on with
 * neither keypoints nor person mask set, given keypoints taking precedence, error
 * statuses with out-parameters untouched, NULL-safe getters and frees.
 * Build and run: see scripts/test-all.sh (runs it under valgrind's leak check too). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vton.h"

static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); failures++; } } while (0)

/* Estimated keypoints agree with the example's (MediaPipe-made) JSON within this many
 * pixels, for points both call confident (> 0.5). */
#ifndef KEYPOINT_TOLERANCE_PX
#define KEYPOINT_TOLERANCE_PX 4.0f
#endif

static vton_image *read_or_die(const char *path) {
    vton_image *img = NULL;
    if (vton_image_read(path, &img) != VTON_STATUS_OK) {
        fprintf(stderr, "cannot read %s: %s\n", path, vton_last_error_message());
        exit(2);
    }
    return img;
}

/* Reads the first person's pose_keypoints_2d (75 floats) of an OpenPose JSON. */
static int read_json_keypoints(const char *path, float out[75]) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strstr(buf, "\"pose_keypoints_2d\"");
    if (!p || !(p = strchr(p, '['))) return 0;
    p++;
    for (int i = 0; i < 75; i++) {
        char *end;
        out[i] = strtof(p, &end);
        if (end == p) return 0;
        p = end;
        while (*p == ',' || *p == ' ' || *p == '\n') p++;
    }
    return 1;
}

int main(int argc, char **argv) {
    const char *ex = argc > 1 ? argv[1] : "examples";
    /* "leak" mode (under valgrind, where one estimate takes about a minute): every
     * function once, skipping the repeated estimates of the error and precedence checks. */
    int leak_mode = argc > 2 && strcmp(argv[2], "leak") == 0;
    char p[1024];

    snprintf(p, sizeof p, "%s/person/openvto_ai_avatar1_upper.png", ex);
    vton_image *person = read_or_die(p);
    snprintf(p, sizeof p, "%s/garment/openvto_shirt4_front.png", ex);
    vton_image *garment = read_or_die(p);
    unsigned pw = vton_image_width(person), ph = vton_image_height(person);

    /* ---- vton_estimate_pose -------------------------------------------------------- */
    vton_pose *pose = NULL;
    vton_status s = vton_estimate_pose(vton_image_data(person), pw, ph, -1, &pose);
    CHECK(s == VTON_STATUS_OK && pose != NULL, "estimate: %s", vton_last_error_message());
    CHECK(strcmp(vton_last_error_message(), "") == 0, "message after success: %s", vton_last_error_message());
    if (pose) {
        CHECK(vton_pose_keypoint_count(pose) == 25, "keypoint count %u", vton_pose_keypoint_count(pose));
        CHECK(vton_pose_landmark_count(pose) == 33, "landmark count %u", vton_pose_landmark_count(pose));
        CHECK(vton_pose_mask_width(pose) == pw && vton_pose_mask_height(pose) == ph, "mask %ux%u",
              vton_pose_mask_width(pose), vton_pose_mask_height(pose));
        CHECK(vton_pose_score(pose) > 0.5f && vton_pose_score(pose) <= 1.0f, "score %f", vton_pose_score(pose));
        const float *k = vton_pose_keypoints(pose);
        /* BODY_25: 0 nose, 1 neck, 2 right shoulder, 5 left shoulder, 8 mid hip. */
        for (int i = 0; i < 9; i++)
            CHECK(k[i * 3 + 2] > 0.5f, "keypoint %d confidence %f", i, k[i * 3 + 2]);
        float lo = fminf(k[2 * 3], k[5 * 3]), hi = fmaxf(k[2 * 3], k[5 * 3]);
        CHECK(k[3] > lo && k[3] < hi, "neck x %f not between the shoulders (%f, %f)", k[3], lo, hi);
        CHECK(k[1] < k[4], "nose y %f not above neck y %f", k[1], k[4]);
        CHECK(k[4] < k[8 * 3 + 1], "neck y %f not above mid-hip y %f", k[4], k[8 * 3 + 1]);
        for (int i = 0; i < 25; i++)
            if (k[i * 3 + 2] > 0)
                CHECK(k[i * 3] >= 0 && k[i * 3] < pw && k[i * 3 + 1] >= 0 && k[i * 3 + 1] < ph,
                      "keypoint %d (%f, %f) outside the image", i, k[i * 3], k[i * 3 + 1]);
        float ref[75];
        snprintf(p, sizeof p, "%s/person/openvto_ai_avatar1_upper_keypoints.json", ex);
        CHECK(read_json_keypoints(p, ref), "cannot read %s", p);
        int compared = 0;
        for (int i = 0; i < 25; i++) {
            if (k[i * 3 + 2] <= 0.5f || ref[i * 3 + 2] <= 0.5f) continue;
            float d = hypotf(k[i * 3] - ref[i * 3], k[i * 3 + 1] - ref[i * 3 + 1]);
            CHECK(d <= KEYPOINT_TOLERANCE_PX, "keypoint %d is %.1f px from the JSON's", i, d);
            compared++;
        }
        CHECK(compared >= 12, "only %d keypoints compared", compared);
        /* Landmark 0 is the nose, as BODY_25 point 0; visibility/presence in [0, 1]. */
        const float *l = vton_pose_landmarks(pose);
        CHECK(fabsf(l[0] - k[0]) < 1e-3f && fabsf(l[1] - k[1]) < 1e-3f, "landmark 0 (%f, %f) vs nose (%f, %f)",
              l[0], l[1], k[0], k[1]);
        for (int i = 0; i < 33; i++)
            CHECK(l[i * 5 + 3] >= 0 && l[i * 5 + 3] <= 1 && l[i * 5 + 4] >= 0 && l[i * 5 + 4] <= 1,
                  "landmark %d visibility %f presence %f", i, l[i * 5 + 3], l[i * 5 + 4]);
        /* Mask: in [0, 1], covers part of the photo, on at the neck and hip, off in the corner. */
        const float *m = vton_pose_mask(pose);
        double sum = 0;
        int in_range = 1;
        for (size_t i = 0; i < (size_t)pw * ph; i++) {
            sum += m[i];
            if (!(m[i] >= 0.0f && m[i] <= 1.0f)) in_range = 0;
        }
        double mean = sum / ((double)pw * ph);
        CHECK(in_range, "mask values outside [0, 1]");
        CHECK(mean > 0.1 && mean < 0.9, "mask mean %f", mean);
        size_t neck = (size_t)k[4] * pw + (size_t)k[3], hip = (size_t)k[8 * 3 + 1] * pw + (size_t)k[8 * 3];
        CHECK(m[neck] > 0.5f && m[hip] > 0.5f, "mask at neck %f, hip %f", m[neck], m[hip]);
        CHECK(m[0] < 0.5f, "mask at the corner %f", m[0]);
    }

    /* Errors: status, message, out untouched. */
    vton_pose *untouched = (vton_pose *)&failures; /* sentinel, never dereferenced */
    vton_pose *q = untouched;
    CHECK(vton_estimate_pose(NULL, pw, ph, -1, &q) == VTON_STATUS_NULL_ARGUMENT && q == untouched, "NULL rgb");
    CHECK(strstr(vton_last_error_message(), "rgb") != NULL, "message: %s", vton_last_error_message());
    CHECK(vton_estimate_pose(vton_image_data(person), pw, ph, -1, NULL) == VTON_STATUS_NULL_ARGUMENT, "NULL out");
    CHECK(vton_estimate_pose(vton_image_data(person), 0, ph, -1, &q) == VTON_STATUS_INVALID_ARGUMENT && q == untouched,
          "zero width");
    unsigned char *blank = calloc((size_t)96 * 128 * 3, 1);
    if (!leak_mode) {
        s = vton_estimate_pose(vton_image_data(person), pw, ph, 7, &q);
        CHECK(s == VTON_STATUS_MISSING_KEYPOINTS && q == untouched, "person 7: status %d", (int)s);
        CHECK(strlen(vton_last_error_message()) > 0, "no message for person 7");
        s = vton_estimate_pose(blank, 96, 128, -1, &q);
        CHECK(s == VTON_STATUS_MISSING_KEYPOINTS && q == untouched, "blank photo: status %d (%s)", (int)s,
              vton_last_error_message());
    }
    /* NULL-safe getters and free. */
    CHECK(vton_pose_keypoints(NULL) == NULL && vton_pose_landmarks(NULL) == NULL && vton_pose_mask(NULL) == NULL,
          "NULL getters");
    CHECK(vton_pose_keypoint_count(NULL) == 0 && vton_pose_landmark_count(NULL) == 0 &&
          vton_pose_mask_width(NULL) == 0 && vton_pose_mask_height(NULL) == 0 && vton_pose_score(NULL) == 0.0f,
          "NULL sizes");
    vton_pose_free(NULL);

    /* ---- try-on with neither keypoints nor person mask --------------------------------- */
    vton_inputs *in = NULL;
    CHECK(vton_inputs_new(&in) == VTON_STATUS_OK, "inputs_new");
    CHECK(vton_inputs_set_person_rgb(in, vton_image_data(person), pw, ph) == VTON_STATUS_OK, "set person");
    CHECK(vton_inputs_set_garment_rgb(in, vton_image_data(garment), vton_image_width(garment),
                                      vton_image_height(garment)) == VTON_STATUS_OK, "set garment");
    vton_result *res = NULL;
    s = vton_try_on_geometric(in, &res);
    CHECK(s == VTON_STATUS_OK && res != NULL, "try-on without keypoints or mask: %s", vton_last_error_message());
    if (res) {
        vton_image *img = NULL, *wm = NULL;
        CHECK(vton_result_get(res, VTON_OUTPUT_IMAGE, &img) == VTON_STATUS_OK, "get image");
        CHECK(vton_result_get(res, VTON_OUTPUT_WARPED_MASK, &wm) == VTON_STATUS_OK, "get warped mask");
        CHECK(vton_image_width(img) == pw && vton_image_height(img) == ph, "result size");
        const unsigned char *a = vton_image_data(img), *b = vton_image_data(person), *w = vton_image_data(wm);
        size_t changed = 0, covered = 0, n = (size_t)pw * ph;
        for (size_t i = 0; i < n; i++) {
            if (w[i * 3] >= 128) covered++;
            if (abs(a[i * 3] - b[i * 3]) + abs(a[i * 3 + 1] - b[i * 3 + 1]) + abs(a[i * 3 + 2] - b[i * 3 + 2]) > 30)
                changed++;
        }
        CHECK(covered > n / 20, "warped mask covers %zu of %zu pixels", covered, n);
        CHECK(changed > n / 20, "only %zu pixels changed", changed);
        CHECK(memcmp(a, b, 3) == 0, "background pixel changed");
        vton_image_free(img);
        vton_image_free(wm);
    }
    vton_result_free(res);

    /* Given keypoints take precedence: all-zero keypoints are not replaced by estimates. */
    if (!leak_mode) {
        float none[25 * 3];
        memset(none, 0, sizeof none);
        CHECK(vton_inputs_set_keypoints(in, none, 25) == VTON_STATUS_OK, "set zero keypoints");
        vton_result *r2 = NULL;
        s = vton_try_on_geometric(in, &r2);
        CHECK(s == VTON_STATUS_MISSING_KEYPOINTS && r2 == NULL, "zero keypoints: status %d (%s)", (int)s,
              vton_last_error_message());
        /* The estimated keypoints can be set explicitly. */
        if (pose) {
            CHECK(vton_inputs_set_keypoints(in, vton_pose_keypoints(pose), vton_pose_keypoint_count(pose)) == VTON_STATUS_OK,
                  "set estimated keypoints");
            s = vton_try_on_geometric(in, &r2);
            CHECK(s == VTON_STATUS_OK && r2 != NULL, "try-on with estimated keypoints: %s", vton_last_error_message());
            vton_result_free(r2);
        }
    }

    /* A photo without a person and no keypoints: MISSING_KEYPOINTS, out untouched. */
    vton_inputs *in2 = NULL;
    CHECK(vton_inputs_new(&in2) == VTON_STATUS_OK, "inputs_new 2");
    CHECK(vton_inputs_set_person_rgb(in2, blank, 96, 128) == VTON_STATUS_OK, "set blank person");
    CHECK(vton_inputs_set_garment_rgb(in2, vton_image_data(garment), vton_image_width(garment),
                                      vton_image_height(garment)) == VTON_STATUS_OK, "set garment 2");
    vton_result *r3 = NULL;
    if (!leak_mode) {
        s = vton_try_on_geometric(in2, &r3);
        CHECK(s == VTON_STATUS_MISSING_KEYPOINTS && r3 == NULL, "no person: status %d (%s)", (int)s,
              vton_last_error_message());
    }
    CHECK(vton_try_on_geometric(in2, NULL) == VTON_STATUS_NULL_ARGUMENT, "NULL out");

    vton_inputs_free(in2);
    vton_inputs_free(in);
    vton_pose_free(pose);
    free(blank);
    vton_image_free(person);
    vton_image_free(garment);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("C estimate test: all checks passed\n");
    return 0;
}
