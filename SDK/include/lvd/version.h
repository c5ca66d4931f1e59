/*
 * lvd/version.h — ABI version of the lvd plugin SDK.
 *
 * The ABI is versioned MAJOR.MINOR. A host refuses a plugin built for another MAJOR.
 * Within one MAJOR, every struct that can grow starts with `struct_size` and is only ever
 * extended at its end; a reader checks `struct_size` before touching a field that a later
 * MINOR added. Tables are append-only: a field, once published, keeps its offset and meaning.
 */
#ifndef LVD_VERSION_H
#define LVD_VERSION_H

#define LVD_ABI_MAJOR 1
#define LVD_ABI_MINOR 0

/* Marks the one symbol a plugin library exports. */
#if defined(_WIN32)
#define LVD_EXPORT __declspec(dllexport)
#else
#define LVD_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
#define LVD_EXTERN_C_BEGIN extern "C" {
#define LVD_EXTERN_C_END }
#else
#define LVD_EXTERN_C_BEGIN
#define LVD_EXTERN_C_END
#endif

/* Size of a struct up to and including `field`: what a reader requires before reading `field`. */
#define LVD_SIZE_THROUGH(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* Non-zero when a struct whose first field is `struct_size` carries `field`. */
#define LVD_HAS_FIELD(ptr, type, field) \
    ((ptr) != NULL && (ptr)->struct_size >= LVD_SIZE_THROUGH(type, field))

#endif /* LVD_VERSION_H */
