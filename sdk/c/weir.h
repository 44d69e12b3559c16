/*
 * weir.h: write Weir stream processors in C (and in Zig, through @cImport).
 *
 * A processor implements two functions and gets records one at a time; the SDK does the rest:
 * it decodes each packed batch in place (no copies, no allocation per record), collects what
 * the processor emits, and reports the records it failed on so the broker can dead-letter them.
 *
 *     #include "weir.h"
 *
 *     const char *weir_process(const weir_record *record, weir_output *out) {
 *         weir_forward(out, record);      // pass the record through unchanged
 *         return NULL;                    // NULL: done; a message: this record failed
 *     }
 *
 * `weir processor build` compiles it (with the generated bindings and weir.c) into a component
 * of the world `packed-processor` of wit/processor.wit. docs/processors/c.md is the guide.
 */
#ifndef WEIR_H
#define WEIR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* `output` value meaning "the processor's first output topic". */
#define WEIR_DEFAULT_OUTPUT UINT32_MAX

/* Bytes borrowed from the batch (or from the caller): valid until weir_process returns. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} weir_bytes;

/* A header: a name and raw bytes. */
typedef struct {
    weir_bytes name;
    weir_bytes value;
} weir_header;

/* One input record, read in place from the batch. */
typedef struct {
    weir_bytes topic;
    uint32_t partition;
    uint64_t offset;
    /* Milliseconds since the Unix epoch. */
    int64_t timestamp;
    /* Whether the record has a key; `key` is empty when it has none. */
    bool has_key;
    weir_bytes key;
    weir_bytes value;
    uint32_t header_count;
    /* Private: where the headers and the record's packed bytes are. */
    const uint8_t *headers_at_;
    const uint8_t *tail_;
    size_t tail_len_;
} weir_record;

/* Iterates a record's headers: `weir_header_iter it = weir_headers(r); weir_header h;
 * while (weir_header_next(&it, &h)) { ... }` */
typedef struct {
    const uint8_t *at_;
    uint32_t left_;
} weir_header_iter;

weir_header_iter weir_headers(const weir_record *record);
bool weir_header_next(weir_header_iter *it, weir_header *header);
/* The value of the first header named `name`; false when there is none. */
bool weir_record_header(const weir_record *record, const char *name, weir_bytes *value);

/* The processor's parameters, as given at deploy time (`--config name=value`). */
typedef struct weir_config weir_config;

/* The value of parameter `name` (NUL-terminated, lives as long as the instance), or NULL. */
const char *weir_config_get(const weir_config *config, const char *name);

/* What one batch emits. */
typedef struct weir_output weir_output;

/* An output record. */
typedef struct {
    /* NULL: no key. */
    const weir_bytes *key;
    weir_bytes value;
    const weir_header *headers;
    size_t header_count;
    /* Index into the processor's outputs; WEIR_DEFAULT_OUTPUT: the first. */
    uint32_t output;
} weir_message;

/* Emits `record` unchanged (key, value, headers) to the first output. */
void weir_forward(weir_output *out, const weir_record *record);
/* Emits `record` unchanged to output `output`. */
void weir_forward_to(weir_output *out, const weir_record *record, uint32_t output);
/* Emits `value` with the key and headers of `like`, to output `output` (WEIR_DEFAULT_OUTPUT:
 * the first): what a map does. `value` is copied. */
void weir_emit_like(weir_output *out, const weir_record *like, weir_bytes value, uint32_t output);
/* Emits a record with only a value, to the first output. */
void weir_emit(weir_output *out, weir_bytes value);
/* Emits any record. The bytes are copied: they may live on the stack. */
void weir_send(weir_output *out, const weir_message *message);

/* The bytes of a NUL-terminated string (not copied). */
weir_bytes weir_str(const char *s);
/* Whether `bytes` equals the NUL-terminated `s`. */
bool weir_bytes_eq(weir_bytes bytes, const char *s);

typedef enum { WEIR_TRACE, WEIR_DEBUG, WEIR_INFO, WEIR_WARN, WEIR_ERROR } weir_level;

/* Writes a line to the processor's log (`weir processor logs NAME`). */
void weir_log(weir_level level, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Writes `line` (not NUL-terminated) to the processor's log. */
void weir_log_bytes(weir_level level, weir_bytes line);

/* Formats an error message into a buffer the SDK owns (valid until the next call): return it
 * from weir_init or weir_process. */
const char *weir_errorf(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* ---- Keyed state and timers ---- */

/* A keyed state store the deployment declares (`"stores": ["counts"]`). Writes commit with
 * the outputs of the record that made them (exactly once); a record that fails loses them. */
typedef struct {
    uint32_t handle_;
} weir_store;

/* Bytes the SDK allocated for the caller: free them with weir_owned_free. */
typedef struct {
    uint8_t *ptr;
    size_t len;
} weir_owned;

void weir_owned_free(weir_owned *bytes);

/* A table the deployment declares (`"tables": ["customers"]`): a topic read as the latest
 * value of each key, found wherever the key's records went. Read-only. */
typedef struct {
    uint32_t handle_;
} weir_table;

/* Opens the declared table `name` (once, in weir_init). NULL on success, else why not. */
const char *weir_table_open(const char *name, weir_table *table);
/* Whether the table has a value for `key`; if so it is in `*value` (free it with
 * weir_owned_free). */
bool weir_table_lookup(weir_table table, weir_bytes key, weir_owned *value);

/* Opens the declared store `name` (once, in weir_init). NULL on success, else why not. */
const char *weir_store_open(const char *name, weir_store *store);
/* Whether `key` has a value; if so it is in `*value` (free it with weir_owned_free). */
bool weir_store_get(weir_store store, weir_bytes key, weir_owned *value);
/* Looks up `n` keys in one call: for each i, `found[i]` says whether `keys[i]` has a value, and
 * if so it is in `values[i]` (free each with weir_owned_free). Cheaper than n weir_store_get. */
void weir_store_get_many(weir_store store, const weir_bytes *keys, size_t n, weir_owned *values, bool *found);
/* Sets `key` to `value`. NULL on success, else why not (a state limit). */
const char *weir_store_set(weir_store store, weir_bytes key, weir_bytes value);
/* Removes `key`. */
const char *weir_store_delete(weir_store store, weir_bytes key);
/* Adds `delta` to the integer at `key` (absent: 0); the new value is in `*result`. */
const char *weir_store_increment(weir_store store, weir_bytes key, int64_t delta, int64_t *result);
/* Calls `each` for up to `limit` entries with `start <= key < end` (`end` NULL: to the last
 * key), in key order; returns how many. The bytes are valid during the call only. One call
 * returns at most 16 MiB of keys and values, so fewer than `limit` is not the end: scan on from
 * the last key with a 0 byte appended until it returns 0. */
size_t weir_store_scan(weir_store store, weir_bytes start, const weir_bytes *end, uint32_t limit,
                       void (*each)(weir_bytes key, weir_bytes value, void *ctx), void *ctx);

typedef enum { WEIR_EVENT_TIME = 0, WEIR_PROCESSING_TIME = 1 } weir_domain;

/* A timer that came due. */
typedef struct {
    weir_bytes key;
    /* Milliseconds since the Unix epoch. */
    int64_t at;
    weir_domain domain;
} weir_timer;

/* The task's watermark (the largest record timestamp processed, ms): false before the first. */
bool weir_watermark(int64_t *ms);
/* Sets a timer for `key` at `at` (ms); it comes back to weir_on_timer. NULL on success. */
const char *weir_set_timer(weir_bytes key, int64_t at, weir_domain domain);
/* Cancels that timer. */
void weir_cancel_timer(weir_bytes key, int64_t at, weir_domain domain);

/* ---- What a processor defines ---- */

/* Called once per instance before any record. Return NULL to accept the config, or a message
 * saying what is wrong (the deployment then fails with it). Optional: the default accepts. */
const char *weir_init(const weir_config *config);

/* Called for every record. Return NULL when done, or a message: the record failed, what it
 * emitted is dropped, and the broker applies the processor's error policy to it alone. */
const char *weir_process(const weir_record *record, weir_output *out);

/* Called for every timer that came due; emits like weir_process. Optional: the default does
 * nothing. */
const char *weir_on_timer(const weir_timer *timer, weir_output *out);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_H */
