/*
 * A planner plugin for the host's tests, compiled by the tests with `cc -shared -fPIC` into
 * one library per misbehaviour:
 *   FIXTURE_ID="id"        plugin id (default "fixture-ok")
 *   FIXTURE_ABI_MAJOR=n    claims another ABI major
 *   FIXTURE_SHORT_TABLE    claims ABI 1.9 with a 24-byte entry table
 *   FIXTURE_NO_ENTRY       exports no lvd_plugin_entry
 *   FIXTURE_SETUP_FAILS    setup returns an error with a message
 *   FIXTURE_NO_INTERFACE   descriptor says "planner" but serves no lvd.planner/1
 *   FIXTURE_KIND="method"  descriptor's kind
 *   FIXTURE_METHOD         a well-behaved method instead: generate() returns a u8 video tensor of
 *                          the request's frames × height × width × 3, pixel (f, y, x, c) = f + c
 * The well-behaved plan() round-trips the prompt's length through the host's lvd.tensor/1
 * (create, describe, read, release) and returns a one-object layout whose box width is it.
 */
#include <lvd/lvd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURE_ID
#define FIXTURE_ID "fixture-ok"
#endif
#ifndef FIXTURE_ABI_MAJOR
#define FIXTURE_ABI_MAJOR LVD_ABI_MAJOR
#endif
#ifndef FIXTURE_KIND
#ifdef FIXTURE_METHOD
#define FIXTURE_KIND LVD_PLUGIN_KIND_METHOD
#else
#define FIXTURE_KIND LVD_PLUGIN_KIND_PLANNER
#endif
#endif

static const lvd_host *g_host;
static const lvd_tensor_api *g_tensors;

struct lvd_planner_instance {
    int unused;
};

static lvd_status fixture_create(const lvd_planner *self, const lvd_host *host, const char *params_json,
                                 lvd_planner_instance **out, lvd_error *error) {
    (void)self;
    (void)host;
    if (params_json == NULL || params_json[0] != '{')
        return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "params are not a JSON object");
    *out = calloc(1, sizeof **out);
    return *out ? LVD_OK : lvd_error_set(error, LVD_ERR_OUT_OF_MEMORY, "out of memory");
}

static lvd_status fixture_plan(lvd_planner_instance *instance, const lvd_plan_request *request, char **layout_json,
                               lvd_error *error) {
    (void)instance;
    if (g_tensors == NULL) return lvd_error_set(error, LVD_ERR_UNSUPPORTED, "host offers no lvd.tensor/1");
    float width = (float)strlen(request->prompt);
    int64_t shape[1] = {1};
    lvd_tensor *tensor = NULL;
    lvd_status status = g_tensors->create(LVD_DTYPE_F32, 1, shape, &width, &tensor, error);
    if (status != LVD_OK) return status;
    lvd_dtype dtype = -1;
    uint32_t rank = 0;
    int64_t extents[LVD_TENSOR_MAX_RANK] = {0};
    float back = 0;
    if ((status = g_tensors->describe(tensor, &dtype, &rank, extents, LVD_TENSOR_MAX_RANK, error)) != LVD_OK ||
        (status = g_tensors->read(tensor, &back, sizeof back, error)) != LVD_OK) {
        g_tensors->release(tensor, NULL);
        return status;
    }
    if ((status = g_tensors->release(tensor, error)) != LVD_OK) return status;
    /* A second release must be refused with a status, not crash. */
    lvd_error again;
    lvd_error_init(&again);
    if (g_tensors->release(tensor, &again) != LVD_ERR_RELEASED_HANDLE)
        return lvd_error_set(error, LVD_ERR_INTERNAL, "double release was not detected");
    if (dtype != LVD_DTYPE_F32 || rank != 1 || extents[0] != 1 || back != width)
        return lvd_error_set(error, LVD_ERR_INTERNAL, "tensor round trip failed");

    char *text = malloc(256);
    if (text == NULL) return lvd_error_set(error, LVD_ERR_OUT_OF_MEMORY, "out of memory");
    snprintf(text, 256, "{\"keyframes\": [[{\"id\": 0, \"name\": \"thing\", \"box\": [0, 0, %d, 10]}]]}", (int)back);
    *layout_json = text;
    return LVD_OK;
}

static void fixture_free_string(lvd_planner_instance *instance, char *string) {
    (void)instance;
    free(string);
}

static void fixture_destroy(lvd_planner_instance *instance) { free(instance); }

static const lvd_planner k_planner = {sizeof(lvd_planner), NULL, fixture_create, fixture_plan, fixture_free_string,
                                      fixture_destroy};

struct lvd_method_instance {
    int unused;
};

static lvd_status method_create(const lvd_method *self, const lvd_host *host, const char *params_json,
                                lvd_method_instance **out, lvd_error *error) {
    (void)self;
    (void)host;
    (void)params_json;
    *out = calloc(1, sizeof **out);
    return *out ? LVD_OK : lvd_error_set(error, LVD_ERR_OUT_OF_MEMORY, "out of memory");
}

static lvd_status method_generate(lvd_method_instance *instance, const lvd_method_request *request, lvd_tensor **video,
                                  lvd_error *error) {
    (void)instance;
    if (request->frames == 0 || request->width == 0 || request->height == 0)
        return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "frames %u, size %ux%u not supported", request->frames,
                             request->width, request->height);
    int64_t shape[4] = {request->frames, request->height, request->width, 3};
    size_t count = (size_t)request->frames * request->height * request->width * 3;
    unsigned char *pixels = malloc(count);
    if (pixels == NULL) return lvd_error_set(error, LVD_ERR_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < count; i++) {
        size_t channel = i % 3, frame = i / (3 * (size_t)request->height * request->width);
        pixels[i] = (unsigned char)(frame + channel);
    }
    for (uint32_t step = 1; step <= request->steps; step++) {
        if (g_host->is_cancelled(g_host)) {
            free(pixels);
            return lvd_error_set(error, LVD_ERR_CANCELLED, "cancelled at step %u", step);
        }
        g_host->progress(g_host, FIXTURE_ID, step, request->steps, "step");
    }
    lvd_status status = g_tensors->create(LVD_DTYPE_U8, 4, shape, pixels, video, error);
    free(pixels);
    return status;
}

static void method_destroy(lvd_method_instance *instance) { free(instance); }

static const lvd_method k_method = {sizeof(lvd_method), NULL, method_create, method_generate, method_destroy};

static const lvd_plugin_descriptor k_descriptor = {
    sizeof(lvd_plugin_descriptor), FIXTURE_ID, FIXTURE_KIND, "Fixture", "0.0.1", "test fixture",
    "{\"type\": \"object\", \"properties\": {\"steps\": {\"type\": \"integer\", \"default\": 4, \"minimum\": 1}}}"};

static lvd_status fixture_setup(const lvd_host *host, lvd_error *error) {
#ifdef FIXTURE_SETUP_FAILS
    (void)host;
    return lvd_error_set(error, LVD_ERR_NOT_FOUND, "licence file /opt/fixture/licence.key is missing");
#else
    (void)error;
    g_host = host;
    g_tensors = host->get_extension(host, LVD_TENSOR_EXTENSION_ID);
    if (g_tensors != NULL && !LVD_HAS_FIELD(g_tensors, lvd_tensor_api, live_count)) g_tensors = NULL;
    return LVD_OK;
#endif
}

static void fixture_teardown(void) { g_host = NULL; }
static uint32_t fixture_count(void) { return 1; }
static const lvd_plugin_descriptor *fixture_descriptor(uint32_t index) { return index == 0 ? &k_descriptor : NULL; }

static const void *fixture_interface(const char *plugin_id, const char *interface_id) {
#ifdef FIXTURE_NO_INTERFACE
    (void)plugin_id;
    (void)interface_id;
    (void)k_planner;
    (void)k_method;
    return NULL;
#else
#ifdef FIXTURE_METHOD
    (void)k_planner;
    if (strcmp(plugin_id, FIXTURE_ID) == 0 && strcmp(interface_id, LVD_METHOD_INTERFACE_ID) == 0) return &k_method;
#else
    (void)k_method;
    if (strcmp(plugin_id, FIXTURE_ID) == 0 && strcmp(interface_id, LVD_PLANNER_INTERFACE_ID) == 0) return &k_planner;
#endif
    return NULL;
#endif
}

static const lvd_plugin_library k_library = {
#ifdef FIXTURE_SHORT_TABLE
    24, LVD_ABI_MAJOR, 9,
#else
    sizeof(lvd_plugin_library), FIXTURE_ABI_MAJOR, 0,
#endif
    fixture_setup, fixture_teardown, fixture_count, fixture_descriptor, fixture_interface};

#ifdef FIXTURE_NO_ENTRY
LVD_EXPORT const lvd_plugin_library *some_other_symbol(void) { return &k_library; }
#else
LVD_EXPORT const lvd_plugin_library *lvd_plugin_entry(void) { return &k_library; }
#endif
