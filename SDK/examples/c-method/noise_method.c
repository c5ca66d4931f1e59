/*
 * An lvd method plugin in plain C, built out of tree against the SDK headers only: the template
 * for third-party stage-2 methods. It reaches the host's models through lvd.model/1 and its
 * tensors through lvd.tensor/1.
 *
 * Method "example-denoise": plain text-to-video with classifier-free guidance, written as a C
 * author would — encode [negative, prompt], seeded noise, a DPM-Solver++ loop, VAE decode.
 *
 * Build:
 *     cc -std=c11 -O2 -Wall -Wextra -shared -fPIC -I<lvd>/SDK/include noise_method.c -o libexample_denoise.so
 * Install: libexample_denoise.so and example-denoise.json in a folder named by LVD_PLUGIN_PATH.
 */
#include <lvd/lvd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lvd_host *g_host = NULL;
static const lvd_tensor_api *g_tensors = NULL;
static const lvd_model_api *g_models = NULL;

struct lvd_method_instance {
    double guidance_scale;
};

static lvd_status method_create(const lvd_method *self, const lvd_host *host, const char *params_json,
                                lvd_method_instance **out, lvd_error *error) {
    (void)self;
    (void)host;
    (void)params_json; /* no params: the schema is empty */
    lvd_method_instance *instance = calloc(1, sizeof *instance);
    if (instance == NULL) return lvd_error_set(error, LVD_ERR_OUT_OF_MEMORY, "out of memory");
    instance->guidance_scale = 9.0;
    *out = instance;
    return LVD_OK;
}

/* Releases every handle in `handles` that is not NULL. */
static void release_all(lvd_tensor **handles, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (handles[i] != NULL) g_tensors->release(handles[i], NULL);
}

/* op(name, inputs…) with attributes; on failure the error is filled and NULL returned. */
static lvd_tensor *op(const char *name, lvd_tensor *a, lvd_tensor *b, const char *attributes, lvd_error *error) {
    lvd_tensor *inputs[2] = {a, b};
    lvd_tensor *out = NULL;
    if (g_tensors->op(name, inputs, b == NULL ? 1 : 2, attributes, &out, error) != LVD_OK) return NULL;
    return out;
}

static lvd_status method_generate(lvd_method_instance *instance, const lvd_method_request *request, lvd_tensor **video,
                                  lvd_error *error) {
    if (g_models == NULL) return lvd_error_set(error, LVD_ERR_UNSUPPORTED, "the host offers no lvd.model/1");
    if (request->pipeline == NULL) return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "no model pipeline in the request");
    enum { HIDDEN, LATENTS, NOISE, NEXT, BATCH, CONTEXT, UNCOND, COND, DIFF, SCALED, GUIDED, SLOTS };
    lvd_tensor *t[SLOTS] = {0};
    lvd_scheduler *scheduler = NULL;
    lvd_status status = LVD_OK;
    const char *texts[2] = {request->negative_prompt != NULL ? request->negative_prompt
                                                             : "dull, gray, unrealistic, colorless, blurry, low-quality, weird, abrupt",
                            request->prompt};
    if ((status = g_models->encode_text(request->pipeline, texts, 2, &t[HIDDEN], NULL, error)) != LVD_OK) goto done;
    int64_t shape[5] = {1, 4, request->frames, request->height / 8, request->width / 8};
    {
        /* The latent size follows the model's VAE. */
        char *info = NULL;
        if ((status = g_models->pipeline_info(request->pipeline, &info, error)) != LVD_OK) goto done;
        const char *factor = strstr(info, "\"vae_scale_factor\":");
        if (factor != NULL) {
            long f = strtol(factor + strlen("\"vae_scale_factor\":"), NULL, 10);
            if (f > 0) { shape[3] = request->height / f; shape[4] = request->width / f; }
        }
        g_models->free_string(info);
    }
    if ((status = g_models->randn(request->seed, 5, shape, &t[LATENTS], error)) != LVD_OK) goto done;
    if ((status = g_models->scheduler_create(request->pipeline, "DPMSolverMultistepScheduler", request->steps, &scheduler, error)) != LVD_OK) goto done;
    int64_t timesteps[1000];
    uint32_t count = 0;
    if ((status = g_models->scheduler_timesteps(scheduler, timesteps, 1000, &count, error)) != LVD_OK) goto done;
    char scale[64];
    snprintf(scale, sizeof scale, "{\"value\": %.9g}", instance->guidance_scale);
    g_tensors->no_grad_begin();
    for (uint32_t i = 0; i < count; i++) {
        if (g_host->is_cancelled(g_host)) { status = lvd_error_set(error, LVD_ERR_CANCELLED, "cancelled"); break; }
        /* [latents, latents] with [negative, prompt]: one UNet batch, then ε_u + g·(ε_c − ε_u). */
        t[BATCH] = op("concat", t[LATENTS], t[LATENTS], "{\"axis\": 0}", error);
        lvd_unet_call call = {sizeof call, t[BATCH], (double)timesteps[i], t[HIDDEN], NULL, 0, 0, NULL, NULL, NULL};
        if (t[BATCH] == NULL || (status = g_models->unet(request->pipeline, &call, &t[NOISE], NULL, error)) != LVD_OK) {
            status = status != LVD_OK ? status : error->status;
            break;
        }
        t[UNCOND] = op("slice", t[NOISE], NULL, "{\"axis\": 0, \"start\": 0, \"end\": 1}", error);
        t[COND] = op("slice", t[NOISE], NULL, "{\"axis\": 0, \"start\": 1, \"end\": 2}", error);
        t[DIFF] = t[COND] != NULL ? op("sub", t[COND], t[UNCOND], NULL, error) : NULL;
        t[SCALED] = t[DIFF] != NULL ? op("mul_scalar", t[DIFF], NULL, scale, error) : NULL;
        t[GUIDED] = t[SCALED] != NULL ? op("add", t[UNCOND], t[SCALED], NULL, error) : NULL;
        if (t[GUIDED] == NULL ||
            (status = g_models->scheduler_step(scheduler, t[GUIDED], i, t[LATENTS], &t[NEXT], error)) != LVD_OK) {
            status = status != LVD_OK ? status : error->status;
            break;
        }
        lvd_tensor *next = t[NEXT];
        t[NEXT] = NULL;
        release_all(&t[NOISE], 1);
        release_all(&t[BATCH], SLOTS - BATCH);
        memset(&t[BATCH], 0, sizeof(lvd_tensor *) * (SLOTS - BATCH));
        t[NOISE] = NULL;
        g_tensors->release(t[LATENTS], NULL);
        t[LATENTS] = next;
        g_host->progress(g_host, "example-denoise", i + 1, count, "denoising step");
    }
    g_tensors->no_grad_end();
    if (status == LVD_OK) status = g_models->vae_decode(request->pipeline, t[LATENTS], video, error);
done:
    release_all(t, SLOTS);
    g_models->scheduler_destroy(scheduler);
    return status;
}

static void method_destroy(lvd_method_instance *instance) { free(instance); }

static const lvd_method k_method = {
    .struct_size = sizeof(lvd_method),
    .plugin_data = NULL,
    .create = method_create,
    .generate = method_generate,
    .destroy = method_destroy,
};

static const lvd_plugin_descriptor k_descriptor = {
    .struct_size = sizeof(lvd_plugin_descriptor),
    .id = "example-denoise",
    .kind = LVD_PLUGIN_KIND_METHOD,
    .name = "Plain sampling (C example)",
    .version = "1.0.0",
    .description = "Text-to-video with classifier-free guidance through lvd.model/1, in C",
    .params_schema = NULL,
};

static lvd_status library_setup(const lvd_host *host, lvd_error *error) {
    if (host == NULL || host->abi_major != LVD_ABI_MAJOR) return lvd_error_set(error, LVD_ERR_ABI, "needs ABI %d.x", LVD_ABI_MAJOR);
    g_host = host;
    g_tensors = host->get_extension(host, LVD_TENSOR_EXTENSION_ID);
    g_models = host->get_extension(host, LVD_MODEL_EXTENSION_ID);
    if (g_tensors == NULL || g_models == NULL || !LVD_HAS_FIELD(g_models, lvd_model_api, randn))
        return lvd_error_set(error, LVD_ERR_UNSUPPORTED, "the host offers no lvd.tensor/1 and lvd.model/1 tables");
    return LVD_OK;
}

static void library_teardown(void) { g_host = NULL; }
static uint32_t library_plugin_count(void) { return 1; }
static const lvd_plugin_descriptor *library_plugin_descriptor(uint32_t index) { return index == 0 ? &k_descriptor : NULL; }

static const void *library_get_interface(const char *plugin_id, const char *interface_id) {
    if (plugin_id == NULL || interface_id == NULL) return NULL;
    if (strcmp(plugin_id, k_descriptor.id) == 0 && strcmp(interface_id, LVD_METHOD_INTERFACE_ID) == 0) return &k_method;
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
