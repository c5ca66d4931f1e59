/*
 * An lvd planner plugin in plain C: the template for third-party plugins.
 *
 * Plugin "example-line" plans one object moving in a straight line from one side of the canvas
 * to another, e.g. `lvd plan "a dog" --planner example-line --param from=right --param to=left`.
 *
 * Build (needs only the SDK headers and json-c):
 *     cc -std=c11 -O2 -Wall -Wextra -shared -fPIC -I<lvd>/SDK/include line_planner.c -ljson-c \
 *        -o libexample_line.so
 * Install: put libexample_line.so and example-line.json in a folder named by LVD_PLUGIN_PATH,
 * by --plugin-path, or ~/.config/lvd/plugins.d.
 */
#include <lvd/lvd.h>
#include <lvd/params_jsonc.h>

#include <stdlib.h>
#include <string.h>

/* The host, kept from setup until teardown. */
static const lvd_host *g_host = NULL;

static void log_line(int32_t level, const char *message) {
    if (g_host != NULL && g_host->log != NULL) g_host->log(g_host, level, "example-line", message);
}

/* ---- the planner ------------------------------------------------------------------------ */

/* Everything create() reads from the params; the instance owns its strings. */
struct lvd_planner_instance {
    char *name;       /* object phrase; NULL = the prompt */
    char *background;
    char from[8];
    char to[8];
    int64_t size;      /* box side in canvas pixels */
    int64_t keyframes;
};

static const char *const k_sides[] = {"left", "right", "top", "bottom", "center"};

static int is_side(const char *side) {
    for (size_t i = 0; i < sizeof k_sides / sizeof k_sides[0]; i++)
        if (strcmp(side, k_sides[i]) == 0) return 1;
    return 0;
}

/* Top-left corner of a box of `size` touching `side` of the 512×512 canvas, vertically or
 * horizontally centred. */
static void side_position(const char *side, double size, double *x, double *y) {
    double centre = (512.0 - size) / 2.0;
    *x = centre;
    *y = centre;
    if (strcmp(side, "left") == 0) *x = 0;
    else if (strcmp(side, "right") == 0) *x = 512.0 - size;
    else if (strcmp(side, "top") == 0) *y = 0;
    else if (strcmp(side, "bottom") == 0) *y = 512.0 - size;
}

static char *duplicate(const char *text) {
    if (text == NULL) return NULL;
    size_t length = strlen(text) + 1;
    char *copy = malloc(length);
    if (copy != NULL) memcpy(copy, text, length);
    return copy;
}

static void instance_free(lvd_planner_instance *instance) {
    if (instance == NULL) return;
    free(instance->name);
    free(instance->background);
    free(instance);
}

static lvd_status planner_create(const lvd_planner *self, const lvd_host *host, const char *params_json,
                                 lvd_planner_instance **out, lvd_error *error) {
    (void)self;
    (void)host;
    if (out == NULL) return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "create: out is NULL");
    struct json_object *params = lvd_params_parse(params_json, error);
    if (params == NULL) return error != NULL ? error->status : LVD_ERR_PARSE;

    lvd_status status = LVD_OK;
    const char *name = NULL, *background = NULL, *from = NULL, *to = NULL;
    lvd_planner_instance *instance = calloc(1, sizeof *instance);
    if (instance == NULL) {
        status = lvd_error_set(error, LVD_ERR_OUT_OF_MEMORY, "create: out of memory");
        goto done;
    }
    if ((status = lvd_params_string(params, "name", NULL, &name, error)) != LVD_OK) goto done;
    if ((status = lvd_params_string(params, "background", "scene", &background, error)) != LVD_OK) goto done;
    if ((status = lvd_params_string(params, "from", "left", &from, error)) != LVD_OK) goto done;
    if ((status = lvd_params_string(params, "to", "right", &to, error)) != LVD_OK) goto done;
    if ((status = lvd_params_int(params, "size", 128, &instance->size, error)) != LVD_OK) goto done;
    if ((status = lvd_params_int(params, "keyframes", 6, &instance->keyframes, error)) != LVD_OK) goto done;
    /* The host validated against the schema; a careful plugin checks again for other hosts. */
    if (!is_side(from) || !is_side(to)) {
        status = lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "from/to must be left, right, top, bottom or center");
        goto done;
    }
    if (instance->size < 8 || instance->size > 512 || instance->keyframes < 2 || instance->keyframes > 64) {
        status = lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "size must be in 8...512 and keyframes in 2...64");
        goto done;
    }
    strcpy(instance->from, from);
    strcpy(instance->to, to);
    instance->name = name != NULL && name[0] != '\0' ? duplicate(name) : NULL;
    instance->background = duplicate(background);
    if (instance->background == NULL || (name != NULL && name[0] != '\0' && instance->name == NULL)) {
        status = lvd_error_set(error, LVD_ERR_OUT_OF_MEMORY, "create: out of memory");
        goto done;
    }
    *out = instance;
    instance = NULL;
done:
    instance_free(instance);
    json_object_put(params);
    return status;
}

static lvd_status planner_plan(lvd_planner_instance *instance, const lvd_plan_request *request, char **layout_json,
                               lvd_error *error) {
    if (instance == NULL || request == NULL || request->prompt == NULL || layout_json == NULL)
        return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "plan: NULL argument");
    if (g_host != NULL && g_host->is_cancelled != NULL && g_host->is_cancelled(g_host))
        return lvd_error_set(error, LVD_ERR_CANCELLED, "plan: cancelled");

    double size = (double)instance->size, x0, y0, x1, y1;
    side_position(instance->from, size, &x0, &y0);
    side_position(instance->to, size, &x1, &y1);

    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "format", json_object_new_string("lvd.layout/1"));
    json_object_object_add(root, "prompt", json_object_new_string(request->prompt));
    json_object_object_add(root, "reasoning", json_object_new_string("one object moving in a straight line"));
    struct json_object *keyframes = json_object_new_array();
    for (int64_t k = 0; k < instance->keyframes; k++) {
        double t = (double)k / (double)(instance->keyframes - 1);
        struct json_object *box = json_object_new_array();
        json_object_array_add(box, json_object_new_int64((int64_t)(x0 + (x1 - x0) * t + 0.5)));
        json_object_array_add(box, json_object_new_int64((int64_t)(y0 + (y1 - y0) * t + 0.5)));
        json_object_array_add(box, json_object_new_int64(instance->size));
        json_object_array_add(box, json_object_new_int64(instance->size));
        struct json_object *object = json_object_new_object();
        json_object_object_add(object, "id", json_object_new_int(0));
        json_object_object_add(object, "name", json_object_new_string(instance->name ? instance->name : request->prompt));
        json_object_object_add(object, "box", box);
        struct json_object *frame = json_object_new_array();
        json_object_array_add(frame, object);
        json_object_array_add(keyframes, frame);
    }
    json_object_object_add(root, "keyframes", keyframes);
    json_object_object_add(root, "background", json_object_new_string(instance->background));

    /* The string belongs to `root`; copy it out before releasing the tree. */
    *layout_json = duplicate(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
    if (*layout_json == NULL) return lvd_error_set(error, LVD_ERR_OUT_OF_MEMORY, "plan: out of memory");
    return LVD_OK;
}

static void planner_free_string(lvd_planner_instance *instance, char *string) {
    (void)instance;
    free(string);
}

static void planner_destroy(lvd_planner_instance *instance) { instance_free(instance); }

static const lvd_planner k_planner = {
    .struct_size = sizeof(lvd_planner),
    .plugin_data = NULL,
    .create = planner_create,
    .plan = planner_plan,
    .free_string = planner_free_string,
    .destroy = planner_destroy,
};

/* ---- the library ------------------------------------------------------------------------ */

static const lvd_plugin_descriptor k_descriptor = {
    .struct_size = sizeof(lvd_plugin_descriptor),
    .id = "example-line",
    .kind = LVD_PLUGIN_KIND_PLANNER,
    .name = "Straight line (C example)",
    .version = "1.0.0",
    .description = "One object moving in a straight line between two sides of the canvas",
    .params_schema =
        "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
        "\"name\": {\"type\": \"string\", \"description\": \"object phrase (default: the prompt)\"},"
        "\"from\": {\"type\": \"string\", \"default\": \"left\", \"enum\": [\"left\", \"right\", \"top\", \"bottom\", \"center\"],"
        " \"description\": \"side the object starts at\"},"
        "\"to\": {\"type\": \"string\", \"default\": \"right\", \"enum\": [\"left\", \"right\", \"top\", \"bottom\", \"center\"],"
        " \"description\": \"side the object ends at\"},"
        "\"size\": {\"type\": \"integer\", \"default\": 128, \"minimum\": 8, \"maximum\": 512, \"description\": \"box side in canvas pixels\"},"
        "\"keyframes\": {\"type\": \"integer\", \"default\": 6, \"minimum\": 2, \"maximum\": 64, \"description\": \"number of keyframes\"},"
        "\"background\": {\"type\": \"string\", \"default\": \"scene\", \"description\": \"background keyword\"}}}",
};

static lvd_status library_setup(const lvd_host *host, lvd_error *error) {
    if (host == NULL) return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "setup: host is NULL");
    if (host->abi_major != LVD_ABI_MAJOR)
        return lvd_error_set(error, LVD_ERR_ABI, "host ABI %u.%u, plugin needs %d.x", host->abi_major, host->abi_minor,
                             LVD_ABI_MAJOR);
    g_host = host;
    /* How a plugin reaches a service table; this planner does not need tensors. */
    const lvd_tensor_api *tensors = host->get_extension(host, LVD_TENSOR_EXTENSION_ID);
    log_line(LVD_LOG_DEBUG, tensors != NULL && LVD_HAS_FIELD(tensors, lvd_tensor_api, live_count)
                                ? "host offers lvd.tensor/1"
                                : "host offers no usable lvd.tensor/1");
    return LVD_OK;
}

static void library_teardown(void) { g_host = NULL; }

static uint32_t library_plugin_count(void) { return 1; }

static const lvd_plugin_descriptor *library_plugin_descriptor(uint32_t index) {
    return index == 0 ? &k_descriptor : NULL;
}

static const void *library_get_interface(const char *plugin_id, const char *interface_id) {
    if (plugin_id == NULL || interface_id == NULL) return NULL;
    if (strcmp(plugin_id, k_descriptor.id) == 0 && strcmp(interface_id, LVD_PLANNER_INTERFACE_ID) == 0) return &k_planner;
    return NULL;
}

static const lvd_plugin_library k_library = {
    .struct_size = sizeof(lvd_plugin_library),
    .abi_major = LVD_ABI_MAJOR,
    .abi_minor = LVD_ABI_MINOR,
    .setup = library_setup,
    .teardown = library_teardown,
    .plugin_count = library_plugin_count,
    .plugin_descriptor = library_plugin_descriptor,
    .get_interface = library_get_interface,
};

LVD_EXPORT const lvd_plugin_library *lvd_plugin_entry(void) { return &k_library; }
