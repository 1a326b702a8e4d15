/* The body rules of doc/rules.md as static data: one row per field, in the order the
 * fields are written to the body (the vendor's parameter table; voiceFileName and
 * idxSmsAppId where the vendor's example puts them). validate.c walks these rows. */
#include <strings.h>

#include "itnio.h"

#define NONE   (-1)
#define SAFE   ITNIO_SAFE_INT
#define NOMAX  1e18     /* strings with no length limit */

#define ROW(nm, rule, kind, check, flags, lo, hi, c, cv, c2, c2v, meaning) \
  { nm, "\"" nm "\":", sizeof(nm) - 1, sizeof(nm) + 2, rule, kind, check, flags, lo, hi, \
    c, cv, c2, c2v, meaning }

#define INT    ITNIO_K_INT
#define NUM    ITNIO_K_NUM
#define STR    ITNIO_K_STR
#define REQ    ITNIO_F_REQUIRED
#define NE     ITNIO_F_NONEMPTY
#define V      ITNIO_F_VOICE

static const itnio_field task_fields[] = {
  ROW("keyId",          "T1", INT, 0, REQ, 1, SAFE, NONE, 0, NONE, 0, "the task's primary key"),
  ROW("recallInterval", "T2", INT, 0, REQ, 1, 1440, NONE, 0, NONE, 0, "minutes between recalls"),
  ROW("recallNum",      "T3", INT, 0, REQ, 1, 10,   NONE, 0, NONE, 0, "number of recall attempts"),
  ROW("recallType",     "T4", INT, 0, REQ, 0, 1,    NONE, 0, NONE, 0, "0 recall all, 1 recall only failed"),
  ROW("recallIntent",   "A1", ITNIO_K_STRLIST, 0, 0, 0, NOMAX, NONE, 0, NONE, 0, "intent labels"),
  ROW("nodeList",       "T5", ITNIO_K_NODES, 0, 0, 0, 0, NONE, 0, NONE, 0, "the recall nodes"),
};

/* Node field indexes, for the conditions below. */
enum { SCRIPT, SOURCE, VFID, VFNAME, UPNAME, BASEFILE, TEXT, LAN, RATE, GENDER, ACCENT,
       HANGUP, SMSAPP, SMS, SENDER, FBPUSH, FBVALUE, OKPUSH, OKTIME, FAILPUSH, RINGPUSH,
       TOSEAT, SIPGROUP, OUTCTL, RATEX, SEATTYPE, SEATKEY, DELAY, NODE_NFIELDS };

static const itnio_field node_fields[] = {
  ROW("scriptId",        "A2",  INT, 0, ITNIO_F_SCRIPT, 1, SAFE, NONE, 0, NONE, 0, "agent template id"),
  ROW("source",          "N1",  INT, 0, REQ | V, 1, 3, NONE, 0, NONE, 0,
      "1 uploaded file, 2 re-upload voice file, 3 text-to-speech"),
  ROW("voiceFileId",     "N2",  STR, ITNIO_S_ANY, NE | V, 0, NOMAX, SOURCE, 1, NONE, 0, "voice file id"),
  ROW("voiceFileName",   "N23", STR, ITNIO_S_ANY, V, 0, NOMAX, NONE, 0, NONE, 0, "voice file name"),
  ROW("uploadName",      "N3",  STR, ITNIO_S_ANY, V, 5, 32, SOURCE, 2, NONE, 0, "uploaded file name"),
  ROW("baseFile",        "N4",  STR, ITNIO_S_BASE64, NE | V, 0, NOMAX, SOURCE, 2, NONE, 0, "the file as Base64"),
  ROW("text",            "N5",  STR, ITNIO_S_ANY, NE | V, 0, 1000, SOURCE, 3, NONE, 0, "text-to-speech text"),
  ROW("lan",             "N6",  STR, ITNIO_S_ANY, NE | V, 0, NOMAX, SOURCE, 3, NONE, 0, "language code"),
  ROW("speakingRate",    "N7",  NUM, 0, V, 0.25, 4, NONE, 0, NONE, 0, "speaking rate"),
  ROW("ssmlGender",      "N8",  INT, 0, V, 1, 2, NONE, 0, NONE, 0, "1 male, 2 female"),
  ROW("accent",          "N9",  INT, 0, V, 0, SAFE, NONE, 0, NONE, 0, "accent code"),
  ROW("hangUpSms",       "N10", INT, 0, REQ | V, 0, 1, NONE, 0, NONE, 0, "send an SMS on hang-up"),
  ROW("idxSmsAppId",     "N23", STR, ITNIO_S_ANY, V, 0, NOMAX, NONE, 0, NONE, 0, "SMS app id"),
  ROW("smsContent",      "N11", STR, ITNIO_S_SMS, NE | V, 0, 1000, HANGUP, 1, NONE, 0, "hang-up SMS template"),
  ROW("senderId",        "N12", STR, ITNIO_S_ANY, V, 0, 32, NONE, 0, NONE, 0, "SMS sender id"),
  ROW("feedbackPush",    "N13", INT, 0, V, 0, 1, NONE, 0, NONE, 0, "SMS on keypress feedback"),
  ROW("feedbackValue",   "N14", STR, ITNIO_S_DIGIT, V, 1, 1, FBPUSH, 1, NONE, 0, "the keypress digit"),
  ROW("successPush",     "N13", INT, 0, V, 0, 1, NONE, 0, NONE, 0, "SMS on call success"),
  ROW("successPushTime", "N15", INT, 0, V, 1, 9999, OKPUSH, 1, NONE, 0, "seconds after success"),
  ROW("failedPush",      "N13", INT, 0, V, 0, 1, NONE, 0, NONE, 0, "SMS on call failure"),
  ROW("ringPush",        "N13", INT, 0, V, 0, 1, NONE, 0, NONE, 0, "SMS on ring"),
  ROW("toSeat",          "N16", INT, 0, REQ | V, 0, 1, NONE, 0, NONE, 0, "transfer to an agent"),
  ROW("sipGroupId",      "N17", INT, 0, V, 1, SAFE, TOSEAT, 1, NONE, 0, "agent group id"),
  ROW("outboundControl", "N18", INT, 0, V, 1, 1, TOSEAT, 1, NONE, 0, "1 proportional outbound"),
  ROW("calloutRate",     "N19", INT, 0, V, 1, 100, TOSEAT, 1, NONE, 0, "outbound multiplier"),
  ROW("toSeatType",      "N20", INT, 0, V, 1, 2, TOSEAT, 1, NONE, 0,
      "1 transfer after the group call, 2 transfer on keypress"),
  ROW("toSeatKey",       "N21", STR, ITNIO_S_SEATKEY, V, 1, 1, TOSEAT, 1, SEATTYPE, 2, "the transfer key"),
  ROW("delayTransfer",   "N22", INT, 0, V, 0, SAFE, NONE, 0, NONE, 0, "seconds before the transfer"),
};

_Static_assert(sizeof node_fields / sizeof node_fields[0] == NODE_NFIELDS, "node rows and their enum differ");
_Static_assert(NODE_NFIELDS <= ITNIO_MAX_FIELDS, "more node rows than validate.c keeps state for");
_Static_assert(sizeof task_fields / sizeof task_fields[0] <= ITNIO_MAX_FIELDS,
               "more task rows than validate.c keeps state for");

const itnio_schema itnio_task_schema = {
  "task", "T6", task_fields, (int)(sizeof task_fields / sizeof task_fields[0])
};
const itnio_schema itnio_node_schema = {
  "node", "N24", node_fields, NODE_NFIELDS
};
const int itnio_node_hangupsms = HANGUP;
const int itnio_node_push[4] = { FBPUSH, OKPUSH, FAILPUSH, RINGPUSH };

/* NULL, or what is wrong with the tables: a row's condition must name an earlier row (the
 * walk decides rows in order, so a later one has no state yet). luaopen checks it once. */
const char *itnio_schema_problem(void) {
  const itnio_schema *ss[2] = { &itnio_task_schema, &itnio_node_schema };
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < ss[k]->nfields; i++) {
      const itnio_field *f = &ss[k]->fields[i];
      if (f->cond >= i || f->cond2 >= i) return f->name;
    }
  return NULL;
}

int itnio_schema_find(const itnio_schema *s, const char *k, size_t kl) {
  for (int i = 0; i < s->nfields; i++) {
    const itnio_field *f = &s->fields[i];
    if (f->namelen == kl && f->name[0] == k[0] && memcmp(f->name, k, kl) == 0) return i;
  }
  return -1;
}

int itnio_schema_suggest(const itnio_schema *s, const char *k, size_t kl) {
  for (int i = 0; i < s->nfields; i++)
    if (s->fields[i].namelen == kl && strncasecmp(s->fields[i].name, k, kl) == 0) return i;
  return -1;
}

/* RFC 4648 section 4 alphabet; '=' only as one or two final pad characters. */
static const unsigned char b64[256] = {
  ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
  ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
  ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
  ['Y'] = 1, ['Z'] = 1,
  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
  ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
  ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
  ['y'] = 1, ['z'] = 1,
  ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
  ['8'] = 1, ['9'] = 1, ['+'] = 1, ['/'] = 1,
};

const char *itnio_base64_problem(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i, body = n;
  if (n && s[n - 1] == '=') body--;
  if (n > 1 && body < n && s[n - 2] == '=') body--;
  for (i = 0; i < body; i++) {
    if (b64[s[i]]) continue;
    if (s[i] == '\n' || s[i] == '\r' || s[i] == ' ' || s[i] == '\t')
      return "it contains white space or line breaks (send Base64 on one line)";
    if (s[i] == '-' || s[i] == '_')
      return "it uses the URL-safe alphabet ('-', '_'); use RFC 4648 standard Base64 ('+', '/')";
    if (s[i] == '=') return "'=' may appear only as padding at the end";
    return "it contains a character outside the Base64 alphabet";
  }
  if (n % 4) return "its length is not a multiple of 4 (Base64 must be padded with '=')";
  return NULL;
}
