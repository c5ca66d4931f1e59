/*
 * lvd/model.h — the model runtime (service table "lvd.model/1"): text-to-video pipelines in the
 * diffusers folder layout (tokenizer, CLIP text encoder, UNet3D with optional GLIGEN adapters,
 * VAE, scheduler), seeded noise, for method plugins. A plugin obtains the table with
 *
 *     const lvd_model_api *models = host->get_extension(host, LVD_MODEL_EXTENSION_ID);
 *
 * Every tensor in or out is a lvd.tensor/1 handle (tensor.h); a returned handle carries one
 * reference for the caller. Pipelines and schedulers are opaque handles too: a pipeline is
 * reference counted (the host's request.pipeline is borrowed for the call; retain it to keep it),
 * a scheduler has one owner and is destroyed with scheduler_destroy. Using a released handle is
 * answered with LVD_ERR_RELEASED_HANDLE, never a crash.
 *
 * Numerics follow diffusers (docs: ../shared/spec/METHODS.md §2–§3): fp32 compute, fp16/bf16
 * weights widened on load. Calls record for autodiff as tensor ops do (grad mode of the calling
 * thread), so a guidance energy of captured attention maps can be differentiated w.r.t. latents.
 */
#ifndef LVD_MODEL_H
#define LVD_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "method.h"
#include "status.h"
#include "tensor.h"
#include "version.h"

LVD_EXTERN_C_BEGIN

#define LVD_MODEL_EXTENSION_ID "lvd.model/1"

/* A denoising scheduler with its own state (DPM-Solver keeps the previous prediction); opaque. */
typedef struct lvd_scheduler lvd_scheduler;

/* lvd_unet_call.flags */
#define LVD_UNET_RECOMPUTE 1u

/* One UNet3D evaluation. Owned by the caller; valid only during the call. */
typedef struct lvd_unet_call {
    uint32_t struct_size;  /* sizeof(lvd_unet_call) as the caller was built */
    lvd_tensor *latents;   /* f32 (B, C, F, h, w); h and w multiples of info "latent_multiple" */
    double timestep;       /* training timestep, e.g. 999 */
    lvd_tensor *context;   /* f32 (B, tokens, D): encode_text's hidden states, one row per batch item */
    /*
     * Cross-attention layers whose probabilities to return, as "down,1,0" (part, block, layer;
     * the spec's "(down,1,0,0)" is accepted too); info "attention_keys" lists them. May be NULL
     * when capture_count is 0.
     */
    const char *const *capture;
    uint32_t capture_count;
    /*
     * LVD_UNET_RECOMPUTE: keep only each layer's inputs on the tape and run the layer again in
     * backward (gradient checkpointing): the same values and gradients, a fraction of the
     * memory, about one more forward pass of time. What a full-size guidance pass needs.
     */
    uint32_t flags;
    /*
     * GLIGEN grounding for this call, or all three NULL (fusers off: the plain base model).
     * Per (batch · frame), batch-major (index b·F + f), S slots (30 in the checkpoints):
     * boxes f32 (B·F, S, 4) normalised xyxy, masks f32 (B·F, S) 1 = real slot, embeddings
     * f32 (B·F, S, D) (encode_text's pooled outputs). Refused by a pipeline without GLIGEN.
     */
    lvd_tensor *grounding_boxes;
    lvd_tensor *grounding_masks;
    lvd_tensor *grounding_embeddings;
} lvd_unet_call;

typedef struct lvd_model_api {
    uint32_t struct_size; /* sizeof(lvd_model_api) as the runtime was built */

    /*
     * Loads a diffusers pipeline folder (model_index.json; tokenizer, text_encoder, unet, vae,
     * optional scheduler — ModelScope's DDIM configuration when absent), weights verified
     * strictly. Stores a new handle (one reference) in *out.
     * Failure: LVD_ERR_IO / LVD_ERR_INVALID_ARGUMENT with a message naming the file and key.
     * Thread rule: any thread. Loading is slow (seconds to minutes for full-size models).
     */
    lvd_status (*pipeline_load)(const char *folder, lvd_pipeline **out, lvd_error *error);

    /* Adds / drops a reference; the last release frees the weights. Failure: LVD_ERR_RELEASED_HANDLE. */
    lvd_status (*pipeline_retain)(lvd_pipeline *pipeline, lvd_error *error);
    lvd_status (*pipeline_release)(lvd_pipeline *pipeline, lvd_error *error);

    /*
     * Describes a pipeline as a JSON object in *info_json (freed with free_string): folder,
     * pipeline_class, latent_channels, vae_scale_factor, latent_multiple, scaling_factor,
     * max_tokens, context_dim, gligen (bool), gligen_max_objects, scheduler (class name),
     * num_train_timesteps, attention_keys [{key, channels, heads, downsample}] where the map of
     * a key covers (h / downsample) × (w / downsample) latent cells.
     * Failure: LVD_ERR_RELEASED_HANDLE. Thread rule: any thread.
     */
    lvd_status (*pipeline_info)(lvd_pipeline *pipeline, char **info_json, lvd_error *error);

    /* Frees a string this table returned; NULL is ignored. */
    void (*free_string)(char *string);

    /*
     * Tokenises `text` as the text encoder sees it, without padding: a JSON object
     * {"ids": [...], "tokens": ["<|startoftext|>", "a</w>", ..., "<|endoftext|>"]} in *tokens_json
     * (freed with free_string), truncated to max_tokens. Methods find phrase positions by these strings.
     * Failure: LVD_ERR_RELEASED_HANDLE, LVD_ERR_INVALID_ARGUMENT (NULL or invalid UTF-8 text).
     */
    lvd_status (*tokenize)(lvd_pipeline *pipeline, const char *text, char **tokens_json, lvd_error *error);

    /*
     * Encodes `texts[0..count)` (each padded to max_tokens): hidden states f32 (count, max_tokens, D)
     * in *hidden and pooled outputs f32 (count, D) (the final hidden state at the end token, no
     * projection: GLIGEN's phrase embeddings) in *pooled. Either out pointer may be NULL.
     * Failure: LVD_ERR_INVALID_ARGUMENT (count 0, NULL text), LVD_ERR_RELEASED_HANDLE.
     */
    lvd_status (*encode_text)(lvd_pipeline *pipeline, const char *const *texts, uint32_t count,
                              lvd_tensor **hidden, lvd_tensor **pooled, lvd_error *error);

    /*
     * Runs the UNet: the noise prediction f32 (B, C, F, h, w) in *noise and, for each requested
     * key i, its cross-attention probabilities f32 (B·F, heads, cells, tokens) in captured[i]
     * (`captured` has capture_count slots; NULL when capture_count is 0). Differentiable w.r.t.
     * the latents when grad mode is on and the latents require grad.
     * Failure: LVD_ERR_INVALID_ARGUMENT (shapes, an unknown key, grounding on a model without
     * GLIGEN, struct_size), LVD_ERR_RELEASED_HANDLE, LVD_ERR_OUT_OF_MEMORY; no handle stored.
     * Thread rule: any thread; calls on one pipeline may run concurrently.
     */
    lvd_status (*unet)(lvd_pipeline *pipeline, const lvd_unet_call *call, lvd_tensor **noise,
                       lvd_tensor **captured, lvd_error *error);

    /*
     * Decodes latents f32 (1, C, F, h, w) or (N, C, h, w) to video frames u8 (F or N, H, W, 3),
     * one frame at a time: v = clamp(x/2 + 1/2, 0, 1), byte = trunc(255·v). Never recorded for
     * autodiff. Failure: LVD_ERR_INVALID_ARGUMENT (shape), LVD_ERR_RELEASED_HANDLE.
     */
    lvd_status (*vae_decode)(lvd_pipeline *pipeline, lvd_tensor *latents, lvd_tensor **video, lvd_error *error);

    /*
     * Encodes images f32 (N, 3, H, W) in [-1, 1] to latents f32 (N, C, H/s, W/s) times the
     * scaling factor: the posterior mean when `sample` is false, else a posterior sample drawn
     * with seeded noise (`seed`, as randn). Failure: LVD_ERR_INVALID_ARGUMENT, LVD_ERR_RELEASED_HANDLE.
     */
    lvd_status (*vae_encode)(lvd_pipeline *pipeline, lvd_tensor *images, bool sample, uint64_t seed,
                             lvd_tensor **latents, lvd_error *error);

    /*
     * A scheduler for `steps` denoising steps from the pipeline's scheduler configuration, built
     * as diffusers' from_config does; `class_name` "DDIMScheduler" or "DPMSolverMultistepScheduler"
     * overrides the configuration's class (NULL = keep it). The reference samples with
     * "DPMSolverMultistepScheduler" (DPM-Solver++ 2M). *out is owned by the caller.
     * Failure: LVD_ERR_INVALID_ARGUMENT (unknown class, steps out of 1..num_train_timesteps).
     */
    lvd_status (*scheduler_create)(lvd_pipeline *pipeline, const char *class_name, uint32_t steps,
                                   lvd_scheduler **out, lvd_error *error);

    /*
     * The timesteps of the run, descending, into timesteps[0..capacity); *count receives the
     * number of steps (call with capacity 0 to ask). Failure: LVD_ERR_INVALID_ARGUMENT when
     * capacity is non-zero and smaller than the count; LVD_ERR_RELEASED_HANDLE.
     */
    lvd_status (*scheduler_timesteps)(lvd_scheduler *scheduler, int64_t *timesteps, uint32_t capacity,
                                      uint32_t *count, lvd_error *error);

    /*
     * ᾱ_t, the cumulative product of (1 − β) at training timestep `timestep`, in *out.
     * Failure: LVD_ERR_INVALID_ARGUMENT (timestep outside 0..num_train_timesteps−1).
     */
    lvd_status (*scheduler_alpha_cumprod)(lvd_scheduler *scheduler, int64_t timestep, double *out, lvd_error *error);

    /*
     * One step: the sample for step index+1 from the model output (the guided noise
     * prediction) at step `index` (0-based) and the current sample, both f32 of one shape.
     * Steps must come in order 0, 1, 2, … (DPM-Solver uses the previous step's prediction).
     * Never recorded for autodiff. Failure: LVD_ERR_INVALID_ARGUMENT (index out of order or
     * range, shapes), LVD_ERR_RELEASED_HANDLE. Thread rule: one call at a time per scheduler.
     */
    lvd_status (*scheduler_step)(lvd_scheduler *scheduler, lvd_tensor *model_output, uint32_t index,
                                 lvd_tensor *sample, lvd_tensor **out, lvd_error *error);

    /* Destroys a scheduler; NULL is ignored. */
    void (*scheduler_destroy)(lvd_scheduler *scheduler);

    /*
     * Standard normal f32 noise of `shape[0..rank)` from `seed`: the values PyTorch's CPU
     * torch.randn gives after torch.manual_seed(seed) (within 2e-6). Stores a new handle in *out.
     * Failure: LVD_ERR_INVALID_ARGUMENT (rank, extents). Thread rule: any thread.
     */
    lvd_status (*randn)(uint64_t seed, uint32_t rank, const int64_t *shape, lvd_tensor **out, lvd_error *error);
} lvd_model_api;

LVD_EXTERN_C_END

#endif /* LVD_MODEL_H */
