/* JSON scalars: strings (validated as UTF-8 while escaped), integers, and doubles in their
 * shortest exact form, whatever the thread's numeric locale. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "itnio.h"

/* Byte classes for the string scanner. */
enum { C_PLAIN = 0, C_ESC, C_L2, C_L3, C_L4, C_BAD, C_NUL };

static const unsigned char byte_class[256] = {
  /* 0x00 */ C_NUL, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC,
             C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC,
  /* 0x10 */ C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC,
             C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC, C_ESC,
  /* 0x20 */ 0, 0, C_ESC, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
  /* 0x30 */ 0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
  /* 0x40 */ 0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
  /* 0x50 */ 0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, C_ESC, 0, 0, 0,
  /* 0x60 */ 0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
  /* 0x70 */ 0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
  /* 0x80..0xBF: continuation bytes, never a start */
  C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
  C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
  C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
  C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
  /* 0xC0, 0xC1: overlong; 0xC2..0xDF: two bytes */
  C_BAD, C_BAD, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,
  C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,
  /* 0xE0..0xEF: three bytes */
  C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3,
  /* 0xF0..0xF4: four bytes; 0xF5..0xFF: never */
  C_L4, C_L4, C_L4, C_L4, C_L4, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
};

#define CONT(c) (((c) & 0xC0) == 0x80)

/* Length of the valid UTF-8 sequence at s (class cl, at most n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n, int cl) {
  unsigned char c = s[0];
  switch (cl) {
    case C_L2:
      return (n >= 2 && CONT(s[1])) ? 2 : 0;
    case C_L3:
      if (n < 3 || !CONT(s[1]) || !CONT(s[2])) return 0;
      if (c == 0xE0 && s[1] < 0xA0) return 0;            /* overlong */
      if (c == 0xED && s[1] > 0x9F) return 0;            /* UTF-16 surrogates */
      return 3;
    case C_L4:
      if (n < 4 || !CONT(s[1]) || !CONT(s[2]) || !CONT(s[3])) return 0;
      if (c == 0xF0 && s[1] < 0x90) return 0;            /* overlong */
      if (c == 0xF4 && s[1] > 0x8F) return 0;            /* above U+10FFFF */
      return 4;
    default:
      return 0;
  }
}

static const char hexdigits[] = "0123456789abcdef";

int itnio_json_string(lua_State *L, itnio_buf *b, const char *str, size_t n, size_t *nchars) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, run = 0, chars = 0;
  if (b) {
    itnio_buf_reserve(L, b, n + 2);   /* the common case, nothing to escape, fits at once */
    itnio_buf_addchar(L, b, '"');
  }
  while (i < n) {
    int cl = byte_class[s[i]];
    if (cl == C_PLAIN) { i++; chars++; continue; }
    if (cl >= C_L2 && cl <= C_L4) {
      size_t k = utf8_seq(s + i, n - i, cl);
      if (!k) return ITNIO_STR_BADUTF8;
      i += k; chars++;
      continue;
    }
    if (cl == C_BAD) return ITNIO_STR_BADUTF8;
    if (cl == C_NUL) return ITNIO_STR_NUL;
    /* C_ESC: flush the plain run, then the escape */
    if (b) {
      char e[6];
      size_t en = 2;
      itnio_buf_addmem(L, b, str + run, i - run);
      e[0] = '\\';
      switch (s[i]) {
        case '"':  e[1] = '"';  break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b';  break;
        case '\f': e[1] = 'f';  break;
        case '\n': e[1] = 'n';  break;
        case '\r': e[1] = 'r';  break;
        case '\t': e[1] = 't';  break;
        default:
          e[1] = 'u'; e[2] = '0'; e[3] = '0';
          e[4] = hexdigits[s[i] >> 4]; e[5] = hexdigits[s[i] & 15];
          en = 6;
      }
      itnio_buf_addmem(L, b, e, en);
    }
    i++; chars++;
    run = i;
  }
  if (b) {
    itnio_buf_addmem(L, b, str + run, n - run);
    itnio_buf_addchar(L, b, '"');
  }
  if (nchars) *nchars = chars;
  return ITNIO_STR_OK;
}

void itnio_json_integer(lua_State *L, itnio_buf *b, int64_t v) {
  char tmp[24], *p = tmp + sizeof tmp;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
  if (v < 0) *--p = '-';
  itnio_buf_addmem(L, b, p, (size_t)(tmp + sizeof tmp - p));
}

size_t itnio_fmt_double(char *out, double v) {
  /* %.15g is exact for most values people write; widen only when reading back differs.
   * printf and strtod both follow the thread's numeric locale, so the read-back compares
   * like with like; then whatever the locale wrote between the digits (its decimal point:
   * "," or a multi-byte one such as U+066B) becomes JSON's '.'. No localeconv, no setlocale. */
  int n = 0, i, o = 0;
  /* Any decimal of up to 15 digits survives a trip through a normal double, so %.15g is
   * already shortest when it reads back; subnormals have fewer bits, so try every width. */
  for (int prec = (fabs(v) < DBL_MIN && v != 0) ? 1 : 15; prec <= 17; prec++) {
    n = snprintf(out, 32, "%.*g", prec, v);
    if (strtod(out, NULL) == v) break;
  }
  if (n < 0) n = 0;
  if (n > 31) n = 31;
  for (i = 0; i < n; i++) {
    char c = out[i];
    if ((c >= '0' && c <= '9') || c == 'e' || c == '-' || c == '+') out[o++] = c;
    else if (o == 0 || out[o - 1] != '.') out[o++] = '.';   /* one '.' for the whole run */
  }
  out[o] = '\0';
  return (size_t)o;
}

void itnio_json_double(lua_State *L, itnio_buf *b, double v) {
  char tmp[32];
  size_t n;
  /* A whole number below 10^15 is its digits, as %.15g writes it (1.0 is "1"): no printf and
   * strtod round trip for the floats 5.3+ gives for whole JSON numbers and literals like 1.0. */
  if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v && !(v == 0 && signbit(v))) {
    itnio_json_integer(L, b, (int64_t)v);
    return;
  }
  n = itnio_fmt_double(tmp, v);
  itnio_buf_addmem(L, b, tmp, n);
}
