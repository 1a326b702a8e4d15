/* One pass over the caller's table: every rule of an endpoint's schema (schema.c) is checked
 * while the JSON body is written, so what was validated is exactly what is sent. The walk
 * knows no field by name: rows say what each field takes, and rows say the rules across
 * fields.
 *
 * The caller's tables are read raw (lua_next, lua_rawget): no metamethod of theirs runs
 * here. Each object's fields are first sorted into stack slots (one lua_next pass), then
 * checked and written in the schema's order. The output lives in an itnio_buf userdata,
 * not a luaL_Buffer, so the walk may use the stack freely; a raise anywhere (memory) leaves
 * the buffer to its __gc. The buffer is the state's spare, borrowed and given back, so a
 * call allocates only its body string. The walk goes as deep as the schemas' lists do
 * (task -> node), never as deep as the caller's data. */
/***
 * @submodule itnio.core
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "itnio.h"

typedef struct walker {
  lua_State *L;
  itnio_buf *b;
  int errs;          /* stack index of the errors array */
  int nerr;
  int full;          /* ITNIO_MAX_ERRORS reached: stop walking */
  int passthrough;   /* unknown scalar fields are sent, not refused */
  int null_idx;      /* stack index of the caller's null sentinel, or 0 */
} walker;

/* Field states while an object is walked. */
enum { ST_ABSENT = 0, ST_OK, ST_BAD };

#define EMIT(w)     ((w)->nerr == 0)   /* once a rule broke, the body is dropped: stop writing */

/* ---- errors ---- */

/* Stack: path, message. Adds {rule, field, message} to the errors array; pops both. */
static void add_error(walker *w, const char *rule) {
  lua_State *L = w->L;
  if (w->nerr >= ITNIO_MAX_ERRORS) {
    w->full = 1;
    lua_pop(L, 2);
    return;
  }
  if (w->nerr == 0) {
    lua_newtable(L);
    lua_replace(L, w->errs);
  }
  lua_createtable(L, 0, 3);
  lua_pushstring(L, rule);
  lua_setfield(L, -2, "rule");
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "field");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "message");
  lua_rawseti(L, w->errs, ++w->nerr);
  lua_pop(L, 2);
}

/* Stack: path. The message is the path, a space, and the formatted text. */
static void fail_at(walker *w, const char *rule, const char *fmt, ...) {
  lua_State *L = w->L;
  va_list ap;
  lua_pushvalue(L, -1);
  lua_pushliteral(L, " ");
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 3);
  add_error(w, rule);
}

/* ---- conditions ---- */

typedef struct object {
  const itnio_schema *s;
  const char *list;                /* the list this object is an item of ("nodeList"), or NULL */
  int index;                       /* its 1-based place in that list */
  unsigned char st[ITNIO_MAX_FIELDS];   /* ST_* per field */
  unsigned char out[ITNIO_MAX_FIELDS];  /* ruled out by an EXCLUDES rule: its rule's index + 1 */
  int slot[ITNIO_MAX_FIELDS];           /* the stack index of each field's value; 0: absent */
  int64_t iv[ITNIO_MAX_FIELDS];         /* integer values of the fields that were ST_OK */
} object;

/* The object's own path ("nodeList[2]"), or nothing for the top level. */
static void push_self(lua_State *L, const object *o) {
  lua_pushfstring(L, "%s[%d]", o->list, o->index);
}

static void push_path(lua_State *L, const object *o, const char *name) {
  if (o->list) lua_pushfstring(L, "%s[%d].%s", o->list, o->index, name);
  else lua_pushstring(L, name);
}

/* A key as it may be shown: printable ASCII kept, other bytes as \xHH, long keys cut. */
static void push_display_key(lua_State *L, const object *o, const char *k, size_t kl) {
  char out[4 * 48 + 4];
  size_t n = 0;
  for (size_t i = 0; i < kl; i++) {
    unsigned char c = (unsigned char)k[i];
    if (i == 48) { memcpy(out + n, "...", 3); n += 3; break; }
    if (c >= 0x20 && c < 0x7f && c != '\\') out[n++] = (char)c;
    else n += (size_t)snprintf(out + n, 5, "\\x%02x", c);
  }
  out[n] = '\0';
  push_path(L, o, out);
}

/* The value at idx as a few words: "string", "nan", "1.5", "9007199254740993". */
static const char *value_text(lua_State *L, int idx, char *tmp) {
  if (lua_type(L, idx) != LUA_TNUMBER) {
    if (lua_type(L, idx) == LUA_TLIGHTUSERDATA) return "userdata";
    return luaL_typename(L, idx);
  }
  if (itnio_isinteger(L, idx)) {
    snprintf(tmp, 32, "%lld", (long long)lua_tointeger(L, idx));
    return tmp;
  }
  {
    double d = (double)lua_tonumber(L, idx);
    if (d != d) return "nan";
    if (d - d != 0) return d > 0 ? "inf" : "-inf";
    itnio_fmt_double(tmp, d);
  }
  return tmp;
}

/* What a field takes, for messages: "an integer from 1 to 1440". */
static void push_expect(lua_State *L, const itnio_field *f) {
  switch (f->kind) {
    case ITNIO_K_INT:
      if (f->min == f->max)
        lua_pushfstring(L, "the integer %d", (int)f->min);
      else if (f->max - f->min == 1)
        lua_pushfstring(L, "the integer %d or %d", (int)f->min, (int)f->max);
      else if (f->max >= ITNIO_SAFE_INT)
        lua_pushfstring(L, "an integer >= %d", (int)f->min);
      else
        lua_pushfstring(L, "an integer from %d to %d", (int)f->min, (int)f->max);
      break;
    case ITNIO_K_NUM: {
      char lo[32], hi[32];
      itnio_fmt_double(lo, f->min);
      itnio_fmt_double(hi, f->max);
      lua_pushfstring(L, "a number from %s to %s", lo, hi);
      break;
    }
    case ITNIO_K_STR:
      switch (f->check) {
        case ITNIO_S_BASE64:  lua_pushliteral(L, "Base64 text (RFC 4648 alphabet, padded, one line)"); break;
        case ITNIO_S_DIGIT:   lua_pushliteral(L, "one digit, \"0\" to \"9\""); break;
        case ITNIO_S_SEATKEY: lua_pushliteral(L, "one key: \"0\" to \"9\", \"*\" or \"#\""); break;
        default:
          if (f->min > 0 && f->max < 1e17)
            lua_pushfstring(L, "a string of %d to %d characters", (int)f->min, (int)f->max);
          else if (f->max < 1e17)
            lua_pushfstring(L, "a string of at most %d characters", (int)f->max);
          else
            lua_pushliteral(L, "a string");
      }
      break;
    case ITNIO_K_LIST:
      lua_pushfstring(L, "an array of %s tables", f->items->name);
      break;
    default:
      lua_pushliteral(L, "an array of strings");
  }
}

/* Stack: path. "must be <expect> (<meaning>), got <value><extra>". */
static void fail_expect(walker *w, const itnio_field *f, const char *rule, const char *got,
                        const char *extra) {
  lua_State *L = w->L;
  push_expect(L, f);
  lua_insert(L, -2);      /* stack: expect, path */
  fail_at(w, rule, "must be %s (%s), got %s%s", lua_tostring(L, -2), f->meaning, got, extra);
  lua_pop(L, 1);
}

static void fail_value(walker *w, const object *o, const itnio_field *f, const char *rule, int idx,
                       const char *extra) {
  char tmp[32];
  const char *got = value_text(w->L, idx, tmp);
  push_path(w->L, o, f->name);
  fail_expect(w, f, rule, got, extra);
}

static int is_one_of(const object *o, int field, int value) {
  return o->st[field] == ST_OK && o->iv[field] == value;
}

/* 1: f's condition holds; 0: it does not; -1: a field it depends on is broken. */
static int cond_holds(const object *o, const itnio_field *f) {
  if (f->cond < 0) return 0;
  if (o->st[f->cond] == ST_BAD || (f->cond2 >= 0 && o->st[f->cond2] == ST_BAD)) return -1;
  return is_one_of(o, f->cond, f->condval) &&
         (f->cond2 < 0 || is_one_of(o, f->cond2, f->cond2val));
}

static void push_cond_text(lua_State *L, const object *o, const itnio_field *f) {
  const itnio_field *c = &o->s->fields[f->cond];
  if (f->cond2 >= 0)
    lua_pushfstring(L, "when %s is %d and %s is %d", c->name, (int)f->condval,
                    o->s->fields[f->cond2].name, (int)f->cond2val);
  else
    lua_pushfstring(L, "when %s is %d", c->name, (int)f->condval);
}

static void check_absent(walker *w, const object *o, const itnio_field *f) {
  lua_State *L = w->L;
  int why = f->flags & ITNIO_F_REQUIRED ? 1 : cond_holds(o, f);
  if (why != 1) return;
  if (f->flags & ITNIO_F_REQUIRED) lua_pushliteral(L, "");
  else { lua_pushliteral(L, " "); push_cond_text(L, o, f); lua_concat(L, 2); }
  push_expect(L, f);
  push_path(L, o, f->name);
  fail_at(w, f->rule, "is required%s: %s (%s)", lua_tostring(L, -3), lua_tostring(L, -2), f->meaning);
  lua_pop(L, 2);
}

/* ---- values ---- */

static int is_absent(const walker *w, int idx) {
  switch (lua_type(w->L, idx)) {
    case LUA_TNIL:           return 1;
    case LUA_TLIGHTUSERDATA: if (lua_touserdata(w->L, idx) == NULL) return 1; break; /* cjson.null */
    default: break;
  }
  return w->null_idx && lua_rawequal(w->L, idx, w->null_idx);
}

enum { INT_OK, INT_BAD, INT_UNSAFE };

static int read_int(lua_State *L, int idx, int64_t *out) {
  double d;
  if (lua_type(L, idx) != LUA_TNUMBER) return INT_BAD;
  if (itnio_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    if (i > (lua_Integer)ITNIO_SAFE_INT || i < -(lua_Integer)ITNIO_SAFE_INT) return INT_UNSAFE;
    *out = (int64_t)i;
    return INT_OK;
  }
  d = (double)lua_tonumber(L, idx);
  if (d != d || floor(d) != d) return INT_BAD;       /* NaN, fractions; inf fails below */
  if (fabs(d) > ITNIO_SAFE_INT) return INT_UNSAFE;
  *out = (int64_t)d;                                  /* -0.0 becomes 0 */
  return INT_OK;
}

static const char unsafe_note[] = " (beyond 2^53-1, the largest integer JSON carries exactly)";

static int check_int(walker *w, object *o, const itnio_field *f, int v, int64_t *out) {
  int r = read_int(w->L, v, out);
  if (r != INT_OK || (double)*out < f->min || (double)*out > f->max) {
    fail_value(w, o, f, f->rule, v, r == INT_UNSAFE ? unsafe_note : "");
    return 0;
  }
  if (EMIT(w)) itnio_json_integer(w->L, w->b, *out);
  return 1;
}

static int check_num(walker *w, object *o, const itnio_field *f, int v) {
  lua_State *L = w->L;
  double d;
  if (lua_type(L, v) != LUA_TNUMBER || !((d = (double)lua_tonumber(L, v)) >= f->min && d <= f->max)) {
    fail_value(w, o, f, f->rule, v, "");   /* NaN fails every comparison */
    return 0;
  }
  if (EMIT(w)) {
    if (itnio_isinteger(L, v)) { itnio_json_integer(L, w->b, (int64_t)lua_tointeger(L, v)); return 1; }
    itnio_json_double(L, w->b, d);
  }
  return 1;
}

/* The first placeholder in an SMS template that is not ${text1}..${text10}, or NULL. */
static const char *sms_bad_placeholder(const char *s, size_t n) {
  const char *end = s + n, *p = s;
  while ((p = memchr(p, '$', (size_t)(end - p))) != NULL) {
    const char *q = p + 2;
    if (p + 1 >= end || p[1] != '{') { p++; continue; }
    if (end - q >= 6 && memcmp(q, "text", 4) == 0) {
      int v = 0, nd = 0;
      q += 4;
      while (q < end && *q >= '0' && *q <= '9' && nd < 3) { v = v * 10 + (*q - '0'); q++; nd++; }
      if (nd && q < end && *q == '}' && v >= 1 && v <= 10 && p[6] != '0') { p = q; continue; }
    }
    return p;
  }
  return NULL;
}

/* Stack: nothing of ours. Pushes a short printable excerpt of a placeholder. */
static void push_excerpt(lua_State *L, const char *p, const char *end) {
  char out[24];
  size_t o = 0;
  while (p < end && o < 20 && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f) {
    out[o++] = *p;
    if (*p++ == '}') break;
  }
  lua_pushlstring(L, out, o);
}

static int check_str(walker *w, object *o, const itnio_field *f, int v) {
  lua_State *L = w->L;
  size_t n, chars = 0;
  const char *s;
  char num[32];
  if (lua_type(L, v) != LUA_TSTRING) { fail_value(w, o, f, f->rule, v, ""); return 0; }
  s = lua_tolstring(L, v, &n);
  if (f->check == ITNIO_S_BASE64) {
    const char *why = itnio_base64_problem(s, n);
    if (why) {
      push_path(L, o, f->name);
      fail_at(w, f->rule, "must be Base64 text (RFC 4648, padded): %s", why);
      return 0;
    }
    if (EMIT(w)) {   /* the alphabet needs no escaping: copy it whole */
      itnio_buf_reserve(L, w->b, n + 2);
      itnio_buf_addchar(L, w->b, '"');
      itnio_buf_addmem(L, w->b, s, n);
      itnio_buf_addchar(L, w->b, '"');
    }
    chars = n;
  } else {
    int r = itnio_json_string(L, EMIT(w) ? w->b : NULL, s, n, &chars);
    if (r != ITNIO_STR_OK) {
      push_path(L, o, f->name);
      fail_at(w, f->rule, r == ITNIO_STR_NUL
              ? "contains a NUL character (\\0), which the API does not take"
              : "is not valid UTF-8 (every string must be UTF-8 text)");
      return 0;
    }
  }
  switch (f->check) {
    case ITNIO_S_DIGIT:
      if (n == 1 && s[0] >= '0' && s[0] <= '9') return 1;
      push_path(L, o, f->name);
      fail_expect(w, f, f->rule, "another string", "");
      return 0;
    case ITNIO_S_SEATKEY:
      if (n == 1 && ((s[0] >= '0' && s[0] <= '9') || s[0] == '*' || s[0] == '#')) return 1;
      push_path(L, o, f->name);
      fail_expect(w, f, f->rule, "another string", "");
      return 0;
    case ITNIO_S_SMS: {
      const char *bad = sms_bad_placeholder(s, n);
      if (bad) {
        push_excerpt(L, bad, s + n);
        push_path(L, o, f->name);
        fail_at(w, f->rule, "may use only the placeholders ${text1} to ${text10}; found '%s'",
                lua_tostring(L, -2));
        lua_pop(L, 1);
        return 0;
      }
      break;
    }
    default: break;
  }
  if ((double)chars < f->min || (double)chars > f->max) {
    snprintf(num, sizeof num, "%zu characters", chars);
    push_path(L, o, f->name);
    fail_expect(w, f, f->rule, num, "");
    return 0;
  }
  if (n == 0 && (f->flags & ITNIO_F_NONEMPTY) && cond_holds(o, f) == 1) {
    push_cond_text(L, o, f);
    push_path(L, o, f->name);
    fail_at(w, f->rule, "must not be empty %s (%s)", lua_tostring(L, -2), f->meaning);
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* Is t a sequence 1..n with no holes? Counts raw keys; never trusts the border of #t. */
static int seq_len(lua_State *L, int t, size_t *len) {
  size_t count = 0;
  double max = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    double k;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER) { lua_pop(L, 1); return 0; }
    /* 5.3+ keeps whole keys integral (before 5.3 every number is a double) */
    if (LUA_VERSION_NUM >= 503 && !itnio_isinteger(L, -1)) { lua_pop(L, 1); return 0; }
    k = (double)lua_tonumber(L, -1);
    if (!(k >= 1) || floor(k) != k) { lua_pop(L, 1); return 0; }
    count++;
    if (k > max) max = k;
  }
  *len = count;
  return (double)count == max;
}

static void walk_object(walker *w, int t, const itnio_schema *s, const char *list, int index);

/* The head of an array field: a table whose keys are 1..n; writes '['. 0 when it is not.
 * of: what its items are ("node" tables, or "strings" when NULL). */
static int open_array(walker *w, object *o, const itnio_field *f, int v, const char *of, size_t *n) {
  lua_State *L = w->L;
  if (lua_type(L, v) != LUA_TTABLE) { fail_value(w, o, f, f->rule, v, ""); return 0; }
  if (!seq_len(L, v, n)) {
    push_path(L, o, f->name);
    fail_at(w, f->rule, "must be an array of %s%s (keys 1..n with no holes), not a map",
            of ? of : "strings", of ? " tables" : "");
    return 0;
  }
  if ((double)*n > 0x7fffffff) luaL_error(L, "itnio: %s too long", f->name);
  if (EMIT(w)) itnio_buf_addchar(L, w->b, '[');
  return 1;
}

/* A list of objects, each walked against the field's item schema. */
static int check_list(walker *w, object *o, const itnio_field *f, int v) {
  lua_State *L = w->L;
  const itnio_schema *items = f->items;
  size_t n = 0;
  if (!open_array(w, o, f, v, items->name, &n)) return 0;
  for (size_t i = 1; i <= n && !w->full; i++) {
    if (EMIT(w) && i > 1) itnio_buf_addchar(L, w->b, ',');
    lua_rawgeti(L, v, (int)i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      walk_object(w, lua_gettop(L), items, f->name, (int)i);
    } else {
      char tmp[32];
      const char *got = is_absent(w, -1) ? "null" : value_text(L, -1, tmp);
      lua_pushfstring(L, "%s[%d]", f->name, (int)i);
      fail_at(w, f->rule, "must be a %s table, got %s", items->name, got);
    }
    lua_pop(L, 1);
  }
  if (EMIT(w)) itnio_buf_addchar(L, w->b, ']');
  return 1;
}

static int check_strlist(walker *w, object *o, const itnio_field *f, int v) {
  lua_State *L = w->L;
  size_t n = 0;
  if (!open_array(w, o, f, v, NULL, &n)) return 0;
  for (size_t i = 1; i <= n && !w->full; i++) {
    size_t sl;
    const char *s;
    int r = -1;
    if (EMIT(w) && i > 1) itnio_buf_addchar(L, w->b, ',');
    lua_rawgeti(L, v, (int)i);
    if (lua_type(L, -1) == LUA_TSTRING) {
      s = lua_tolstring(L, -1, &sl);
      r = itnio_json_string(L, EMIT(w) ? w->b : NULL, s, sl, NULL);
    }
    if (r != ITNIO_STR_OK) {
      char tmp[32];
      const char *got = r == ITNIO_STR_BADUTF8 ? "invalid UTF-8"
                      : r == ITNIO_STR_NUL ? "a string with a NUL character"
                      : is_absent(w, -1) ? "null" : value_text(L, -1, tmp);
      lua_pushfstring(L, "%s[%d]", f->name, (int)i);
      fail_at(w, f->rule, "must be a UTF-8 string (%s), got %s", f->meaning, got);
    }
    lua_pop(L, 1);
  }
  if (EMIT(w)) itnio_buf_addchar(L, w->b, ']');
  return 1;
}

/* A passthrough value: a string, a finite number or a boolean, written as it is. */
static void emit_passthrough(walker *w, const object *o, int first, int k, int v) {
  lua_State *L = w->L;
  size_t kl, sl;
  const char *key = lua_tolstring(L, k, &kl);
  int r = ITNIO_STR_OK;
  if (EMIT(w) && !first) itnio_buf_addchar(L, w->b, ',');
  if (itnio_json_string(L, EMIT(w) ? w->b : NULL, key, kl, NULL) != ITNIO_STR_OK) {
    push_display_key(L, o, key, kl);
    fail_at(w, o->s->unknown_rule, "is a field name that is not valid UTF-8");
    return;
  }
  if (EMIT(w)) itnio_buf_addchar(L, w->b, ':');
  switch (lua_type(L, v)) {
    case LUA_TBOOLEAN:
      if (EMIT(w)) {
        if (lua_toboolean(L, v)) itnio_buf_addlit(L, w->b, "true");
        else itnio_buf_addlit(L, w->b, "false");
      }
      return;
    case LUA_TNUMBER: {
      /* Lua integers (5.3+) follow the rule known fields follow: within +-(2^53-1), beyond
       * which a JSON reader may round them. A float is sent as the double it is (exact). */
      double d = (double)lua_tonumber(L, v);
      int64_t iv;
      char tmp[32];
      int ir = itnio_isinteger(L, v) ? read_int(L, v, &iv) : INT_BAD;
      if (ir == INT_OK) { if (EMIT(w)) itnio_json_integer(L, w->b, iv); return; }
      if (ir == INT_UNSAFE) {
        push_display_key(L, o, key, kl);
        fail_at(w, o->s->unknown_rule, "must be an integer within +-(2^53-1) to be passed"
                " through, got %s%s", value_text(L, v, tmp), unsafe_note);
        return;
      }
      if (d - d != 0) {   /* NaN or infinite */
        push_display_key(L, o, key, kl);
        fail_at(w, o->s->unknown_rule, "must be a finite number to be passed through, got %s", value_text(L, v, tmp));
        return;
      }
      if (EMIT(w)) itnio_json_double(L, w->b, d);
      return;
    }
    default: {
      const char *s = lua_tolstring(L, v, &sl);
      r = itnio_json_string(L, EMIT(w) ? w->b : NULL, s, sl, NULL);
      if (r != ITNIO_STR_OK) {
        push_display_key(L, o, key, kl);
        fail_at(w, o->s->unknown_rule, r == ITNIO_STR_NUL ? "contains a NUL character (\\0)"
                                                          : "is not valid UTF-8");
      }
    }
  }
}

static int is_scalar(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  return t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN;
}

/* Stack: key, value (of the object in walk). Reports a key that has no place. */
static void unknown_key(walker *w, const object *o) {
  lua_State *L = w->L;
  const char *what = o->list ? "a" : "the";
  if (lua_type(L, -2) == LUA_TSTRING) {
    size_t kl;
    const char *k = lua_tolstring(L, -2, &kl);
    int near = itnio_schema_suggest(o->s, k, kl);
    push_display_key(L, o, k, kl);
    if (near >= 0)
      fail_at(w, o->s->unknown_rule, "is not a field of %s %s (did you mean '%s'?)", what,
              o->s->name, o->s->fields[near].name);
    else if (w->passthrough)
      fail_at(w, o->s->unknown_rule, "is not a field of %s %s; only a string, number or boolean"
              " can be passed through, got %s", what, o->s->name, luaL_typename(L, -2));
    else
      fail_at(w, o->s->unknown_rule, "is not a field of %s %s (to send unknown fields as they"
              " are, pass { passthrough = true })", what, o->s->name);
  } else {
    char tmp[32], key[48];
    const char *kt = lua_type(L, -2) == LUA_TBOOLEAN ? (lua_toboolean(L, -2) ? "true" : "false")
                                                      : value_text(L, -2, tmp);
    snprintf(key, sizeof key, "[%s]", kt);
    if (o->list) lua_pushfstring(L, "%s[%d]%s", o->list, o->index, key);
    else lua_pushstring(L, key);
    fail_at(w, o->s->unknown_rule, "is a key that is not a field name: %s %s has only named"
            " fields", what, o->s->name);
  }
}

/* Before the fields are checked: which fields an EXCLUDES rule rules out (its trigger is
 * present). */
static void rule_out(object *o) {
  const itnio_schema *s = o->s;
  memset(o->out, 0, (size_t)s->nfields);
  for (int r = 0; r < s->nxrules; r++) {
    const itnio_xrule *x = &s->xrules[r];
    if (x->kind != ITNIO_X_EXCLUDES || !o->slot[x->when]) continue;
    for (int i = 0; i < s->nfields; i++)
      if ((s->fields[i].flags & x->flag) && !o->out[i]) o->out[i] = (unsigned char)(r + 1);
  }
}

/* After the fields are checked: the ONE_OF rules whose condition holds. */
static void check_one_of(walker *w, object *o) {
  lua_State *L = w->L;
  const itnio_schema *s = o->s;
  for (int r = 0; r < s->nxrules && !w->full; r++) {
    const itnio_xrule *x = &s->xrules[r];
    int any = 0, broken = 0, k;
    if (x->kind != ITNIO_X_ONE_OF || !is_one_of(o, x->when, x->value)) continue;
    for (k = 0; k < 8 && x->of[k] >= 0; k++) {
      any |= is_one_of(o, x->of[k], 1);
      broken |= o->st[x->of[k]] == ST_BAD;   /* already reported: say nothing more */
    }
    if (any || broken) continue;
    for (k = 0; k < 8 && x->of[k] >= 0; k++) {
      if (k) lua_pushliteral(L, ", ");
      lua_pushstring(L, s->fields[x->of[k]].name);
    }
    lua_concat(L, 2 * k - 1);
    if (o->list) push_self(L, o); else lua_pushstring(L, s->name);
    fail_at(w, x->rule, "has %s = %d, so at least one of %s must be 1", s->fields[x->when].name,
            (int)x->value, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
}

static void walk_object(walker *w, int t, const itnio_schema *s, const char *list, int index) {
  lua_State *L = w->L;
  const int nf = s->nfields;
  int base, extras, nextra = 0, first = 1, i;
  object o;
  o.s = s;
  o.list = list;
  o.index = index;
  memset(o.slot, 0, (size_t)nf * sizeof o.slot[0]);
  luaL_checkstack(L, nf + 12, "itnio: no stack space for a task");
  base = lua_gettop(L);
  lua_pushnil(L);
  extras = lua_gettop(L);   /* passthrough keys and values, in pairs, made when one comes */

  /* 1. Find each field's value: a known one stays on the stack, below the key lua_next goes
   *    on with (no slot to fill for the fields that are absent). */
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int f = -1, near = -1;
    if (w->full) { lua_pop(L, 2); break; }
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t kl;
      const char *k = lua_tolstring(L, -2, &kl);   /* a string already: safe inside lua_next */
      f = itnio_schema_find(s, k, kl);
      if (f < 0) near = itnio_schema_suggest(s, k, kl);
    }
    if (is_absent(w, -1)) { lua_pop(L, 1); continue; }
    if (f >= 0) {
      lua_insert(L, -2);   /* value, key: the value stays where it is now */
      o.slot[f] = lua_gettop(L) - 1;
      continue;
    }
    /* A near miss of a known name ("keyid") is a typo even in passthrough mode. */
    if (w->passthrough && lua_type(L, -2) == LUA_TSTRING && is_scalar(L, -1) && near < 0) {
      /* The value is kept with its key: read once, so a finalizer or a metamethod that runs
       * before step 4 cannot change what is sent after it was checked. */
      if (lua_isnil(L, extras)) { lua_newtable(L); lua_replace(L, extras); }
      lua_pushvalue(L, -2);
      lua_rawseti(L, extras, 2 * ++nextra - 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, extras, 2 * nextra);
    } else {
      unknown_key(w, &o);
    }
    lua_pop(L, 1);
  }

  /* 2. Check and write the fields in the schema's order. */
  rule_out(&o);
  if (EMIT(w)) itnio_buf_addchar(L, w->b, '{');
  for (i = 0; i < nf && !w->full; i++) {
    const itnio_field *f = &s->fields[i];
    int v = o.slot[i], ok;
    o.st[i] = ST_ABSENT;
    if (!v) {
      if (!o.out[i]) check_absent(w, &o, f);
      continue;
    }
    if (o.out[i]) {
      const itnio_xrule *x = &s->xrules[o.out[i] - 1];
      push_path(L, &o, f->name);
      fail_at(w, x->rule, "%s", x->message);
      continue;
    }
    if (EMIT(w)) {
      if (!first) itnio_buf_addchar(L, w->b, ',');
      itnio_buf_addmem(L, w->b, f->jkey, f->jkeylen);
    }
    first = 0;
    switch (f->kind) {
      case ITNIO_K_INT:  ok = check_int(w, &o, f, v, &o.iv[i]); break;
      case ITNIO_K_NUM:  ok = check_num(w, &o, f, v); break;
      case ITNIO_K_STR:  ok = check_str(w, &o, f, v); break;
      case ITNIO_K_LIST: ok = check_list(w, &o, f, v); break;
      default:           ok = check_strlist(w, &o, f, v); break;
    }
    o.st[i] = ok ? ST_OK : ST_BAD;
  }

  /* 3. Rules across fields. */
  check_one_of(w, &o);

  /* 4. Passthrough fields, after the known ones. */
  for (i = 1; i <= nextra && !w->full; i++) {
    lua_rawgeti(L, extras, 2 * i - 1);
    lua_rawgeti(L, extras, 2 * i);
    emit_passthrough(w, &o, first, lua_gettop(L) - 1, lua_gettop(L));
    first = 0;
    lua_pop(L, 2);
  }
  if (EMIT(w)) itnio_buf_addchar(L, w->b, '}');
  lua_settop(L, base);
}

itnio_buf *itnio_encode_body(lua_State *L, const itnio_endpoint *e, int task, int passthrough,
                             int null_idx) {
  walker w;
  memset(&w, 0, sizeof w);
  w.L = L;
  w.passthrough = passthrough;
  w.null_idx = null_idx;
  lua_pushnil(L);   /* the errors array, made at the first error */
  w.errs = lua_gettop(L);
  w.b = itnio_buf_borrow(L, 512);
  walk_object(&w, task, e->schema, NULL, 0);
  if (!w.nerr) return w.b;
  if (w.full) {
    lua_pushboolean(L, 1);
    lua_setfield(L, w.errs, "truncated");
  }
  return NULL;
}

/*** Checks a request's body against every rule of an endpoint (doc/rules.md) and writes it as
 * JSON in the same pass. The table is read raw: no metamethod of the caller's runs.
 * @function encode
 * @tparam string endpoint the endpoint's name (see `endpoints`), e.g. `"recall_update"`
 * @tparam table task the body as a Lua table
 * @tparam[opt] table opts `passthrough` (boolean: send unknown scalar fields), `null` (the
 * JSON null sentinel of the caller's JSON library)
 * @treturn string the body
 * @return[2] nil
 * @treturn[2] table every broken rule, `{ rule, field, message }` each (at most `MAX_ERRORS`;
 * `truncated` set when more broke)
 * @raise when the endpoint is unknown, task is not a table, or opts is malformed */
int itnio_encode(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const itnio_endpoint *e = itnio_endpoint_find(name);
  int passthrough = 0, null_idx = 0;
  itnio_buf *b;
  if (!e) return luaL_argerror(L, 1, lua_pushfstring(L, "no endpoint named '%s' (see core.endpoints())", name));
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 3);
  if (!lua_isnil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_pushliteral(L, "passthrough");
    lua_rawget(L, 3);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
      luaL_argerror(L, 3, "opts.passthrough must be a boolean");
    passthrough = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_pushliteral(L, "null");
    lua_rawget(L, 3);
    if (!lua_isnil(L, -1)) null_idx = 4;
  } else {
    lua_pushnil(L);
  }
  b = itnio_encode_body(L, e, 2, passthrough, null_idx);   /* stack: 5 errs|nil, 6 buffer */
  if (!b) {
    lua_pushnil(L);
    lua_pushvalue(L, 5);
    return 2;
  }
  itnio_buf_pushkeep(L, b, 6);
  return 1;
}

/*** The endpoints the core knows, in a new table each time.
 * @function endpoints
 * @treturn {table,...} `{ name, method, path, title, noun }` each, in the core's order */
int itnio_endpoints_list(lua_State *L) {
  lua_createtable(L, itnio_nendpoints, 0);
  for (int i = 0; i < itnio_nendpoints; i++) {
    const itnio_endpoint *e = &itnio_endpoints[i];
    lua_createtable(L, 0, 5);
    lua_pushstring(L, e->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, e->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, e->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, e->title);
    lua_setfield(L, -2, "title");
    lua_pushstring(L, e->noun);
    lua_setfield(L, -2, "noun");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}
