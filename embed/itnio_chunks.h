/* The Lua layer as C arrays: build/embed/itnio_chunks.c, written by tools/embed-lua.lua. */
#ifndef ITNIO_CHUNKS_H
#define ITNIO_CHUNKS_H

#include <stddef.h>

typedef struct itnio_chunk {
  const char *module;     /* "itnio", "itnio.internal.call", ... */
  const char *chunkname;  /* "@lua/itnio/internal/call.lua": what error messages and tracebacks show */
  const char *source;
  size_t      len;
} itnio_chunk;

extern const itnio_chunk itnio_chunks[];   /* ends with an entry whose module is NULL */

#endif
