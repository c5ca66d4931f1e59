/*
 * lvd/method.h — stage 2: layout → video (interface "lvd.method/1").
 */
#ifndef LVD_METHOD_H
#define LVD_METHOD_H

#include <stdint.h>

#include "host.h"
#include "status.h"
#include "tensor.h"
#include "version.h"

LVD_EXTERN_C_BEGIN

#define LVD_METHOD_INTERFACE_ID "lvd.method/1"

/* A loaded text-to-video pipeline (text encoder, UNet3D, VAE, scheduler); opaque, owned by the host. */
typedef struct lvd_pipeline lvd_pipeline;

/* One method instance; opaque, created by lvd_method.create. */
typedef struct lvd_method_instance lvd_method_instance;

/* What to generate. Owned by the caller; valid only during the call. */
typedef struct lvd_method_request {
    uint32_t struct_size;        /* sizeof(lvd_method_request) as the caller was built */
    const char *prompt;          /* UTF-8, non-NULL */
    const char *negative_prompt; /* UTF-8, NULL = the model's default */
    const char *layout_json;     /* lvd layout JSON (planner.h), NULL for methods that need none */
    uint64_t seed;
    uint32_t frames;
    uint32_t width;  /* pixels */
    uint32_t height; /* pixels */
    uint32_t steps;  /* denoising steps */
    lvd_pipeline *pipeline;
} lvd_method_request;

typedef struct lvd_method {
    uint32_t struct_size; /* sizeof(lvd_method) as the plugin was built */
    const void *plugin_data; /* free for the implementation */

    /* As lvd_planner.create. */
    lvd_status (*create)(const struct lvd_method *self, const lvd_host *host, const char *params_json,
                         lvd_method_instance **out, lvd_error *error);

    /*
     * Generates one video. On success stores in *video a new tensor handle (one reference,
     * released by the caller through lvd.tensor/1) of dtype u8 and shape (frames, height, width, 3).
     * Progress is reported through host->progress; host->is_cancelled is polled each step and
     * answered with LVD_ERR_CANCELLED. Failure: a status, *video untouched, `error` filled.
     * Thread rule: one call at a time per instance.
     */
    lvd_status (*generate)(lvd_method_instance *instance, const lvd_method_request *request,
                           lvd_tensor **video, lvd_error *error);

    /* Destroys an instance; NULL is ignored. Thread rule: no other call on it in flight. */
    void (*destroy)(lvd_method_instance *instance);
} lvd_method;

LVD_EXTERN_C_END

#endif /* LVD_METHOD_H */
