/* The endpoints and the body rules of doc/rules.md, as static data.
 *
 * An endpoint is a row: name, method, path, and the schema of its body. A schema is one row
 * per field, in the order the fields are written to the body (the vendor's parameter table;
 * voiceFileName and idxSmsAppId where the vendor's example puts them), plus rows for the
 * rules across fields (ITNIO_X_*). A field's row says its type, range, when it is required
 * (always, or when an earlier field has a value), and for a list, the schema of its items.
 * validate.c walks these rows; nothing in it knows a field by name.
 *
 * A second endpoint is one more schema and one more row of itnio_endpoints (doc/architecture.md
 * lists what else it gets for free). `make test-endpoint` builds the core with a small one. */
#include <pthread.h>
#include <strings.h>

#include "itnio.h"

#define NONE   (-1)
#define SAFE   ITNIO_SAFE_INT
#define NOMAX  1e18     /* strings with no length limit */

#define FIELD(nm, rule, kind, check, flags, lo, hi, c, cv, c2, c2v, meaning, items) \
  { nm, "\"" nm "\":", sizeof(nm) - 1, sizeof(nm) + 2, rule, kind, check, flags, lo, hi, \
    c, cv, c2, c2v, meaning, items }
#define ROW(nm, rule, kind, check, flags, lo, hi, c, cv, c2, c2v, meaning) \
  FIELD(nm, rule, kind, check, flags, lo, hi, c, cv, c2, c2v, meaning, NULL)
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define INT    ITNIO_K_INT
#define NUM    ITNIO_K_NUM
#define STR    ITNIO_K_STR
#define REQ    ITNIO_F_REQUIRED
#define NE     ITNIO_F_NONEMPTY
#define V      ITNIO_F_VOICE

/* ---- Edit Task (Auto-Recall): the task, and each node of its nodeList ---- */

/* Node field indexes, for the conditions below. */
enum { SCRIPT, SOURCE, VFID, VFNAME, UPNAME, BASEFILE, TEXT, LAN, RATE, GENDER, ACCENT,
       HANGUP, SMSAPP, SMS, SENDER, FBPUSH, FBVALUE, OKPUSH, OKTIME, FAILPUSH, RINGPUSH,
       TOSEAT, SIPGROUP, OUTCTL, RATEX, SEATTYPE, SEATKEY, DELAY, NODE_NFIELDS };

static const itnio_field node_fields[] = {
  ROW("scriptId",        "A2",  INT, 0, 0, 1, SAFE, NONE, 0, NONE, 0, "agent template id"),
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

_Static_assert(COUNT(node_fields) == NODE_NFIELDS, "node rows and their enum differ");

static const itnio_xrule node_rules[] = {
  /* A2/A3: a node with scriptId is an agent node: no voice-node field, none required. */
  { "A3", ITNIO_X_EXCLUDES, SCRIPT, 0, V, { NONE },
    "cannot be in an agent node (one with scriptId): an agent node takes only scriptId" },
  /* N13: an SMS on hang-up needs an event to send it on. */
  { "N13", ITNIO_X_ONE_OF, HANGUP, 1, 0, { FBPUSH, OKPUSH, FAILPUSH, RINGPUSH, NONE }, NULL },
};

static unsigned char node_index[ITNIO_INDEX_SIZE];
static const itnio_schema node_schema = {
  "node", "N24", node_fields, NODE_NFIELDS, node_rules, COUNT(node_rules), node_index
};

static const itnio_field task_fields[] = {
  ROW("keyId",          "T1", INT, 0, REQ, 1, SAFE, NONE, 0, NONE, 0, "the task's primary key"),
  ROW("recallInterval", "T2", INT, 0, REQ, 1, 1440, NONE, 0, NONE, 0, "minutes between recalls"),
  ROW("recallNum",      "T3", INT, 0, REQ, 1, 10,   NONE, 0, NONE, 0, "number of recall attempts"),
  ROW("recallType",     "T4", INT, 0, REQ, 0, 1,    NONE, 0, NONE, 0, "0 recall all, 1 recall only failed"),
  ROW("recallIntent",   "A1", ITNIO_K_STRLIST, 0, 0, 0, NOMAX, NONE, 0, NONE, 0, "intent labels"),
  FIELD("nodeList",     "T5", ITNIO_K_LIST, 0, 0, 0, 0, NONE, 0, NONE, 0, "the recall nodes", &node_schema),
};

static unsigned char task_index[ITNIO_INDEX_SIZE];
static const itnio_schema task_schema = {
  "task", "T6", task_fields, COUNT(task_fields), NULL, 0, task_index
};

#ifdef ITNIO_TEST_ENDPOINT
/* ---- make test-endpoint: a small second endpoint, to prove that one needs nothing else ---- */

static const itnio_field probe_fields[] = {
  ROW("keyId", "P1", INT, 0, REQ, 1, SAFE, NONE, 0, NONE, 0, "the task's primary key"),
  ROW("note",  "P2", STR, ITNIO_S_ANY, 0, 0, 64, NONE, 0, NONE, 0, "a note"),
};

static unsigned char probe_index[ITNIO_INDEX_SIZE];
static const itnio_schema probe_schema = {
  "probe", "P3", probe_fields, COUNT(probe_fields), NULL, 0, probe_index
};
#endif

/* ---- the endpoints ---- */

const itnio_endpoint itnio_endpoints[] = {
  { "recall_update", "POST", "/voice/recallFlow/update", "Edit Task (Auto-Recall)", "task", &task_schema },
#ifdef ITNIO_TEST_ENDPOINT
  { "test_probe", "POST", "/voice/test/probe", "a test endpoint (make test-endpoint)", "probe", &probe_schema },
#endif
};
const int itnio_nendpoints = COUNT(itnio_endpoints);

const itnio_endpoint *itnio_endpoint_find(const char *name) {
  for (int i = 0; i < itnio_nendpoints; i++)
    if (strcmp(itnio_endpoints[i].name, name) == 0) return &itnio_endpoints[i];
  return NULL;
}

static int in_range(int field, const itnio_schema *s) {
  return field >= 0 && field < s->nfields;
}

/* What is wrong with one schema and the schemas of its lists, or NULL. */
static const char *schema_problem(const itnio_schema *s) {
  if (s->nfields > ITNIO_MAX_FIELDS) return s->name;
  for (int i = 0; i < s->nfields; i++) {
    const itnio_field *f = &s->fields[i];
    /* a condition names an earlier row: the walk decides rows in order */
    if (f->cond >= i || f->cond2 >= i) return f->name;
    if ((f->kind == ITNIO_K_LIST) != (f->items != NULL)) return f->name;
    if (f->items) {
      const char *bad = schema_problem(f->items);
      if (bad) return bad;
    }
  }
  for (int i = 0; i < s->nxrules; i++) {
    const itnio_xrule *x = &s->xrules[i];
    if (!in_range(x->when, s)) return x->rule;
    for (int k = 0; k < 8 && x->of[k] != NONE; k++)
      if (!in_range(x->of[k], s)) return x->rule;
    if (x->kind == ITNIO_X_ONE_OF && x->of[0] == NONE) return x->rule;
    if (x->kind == ITNIO_X_EXCLUDES && (!x->flag || !x->message)) return x->rule;
  }
  return NULL;
}

/* A field name's slot in its schema's index (then the next ones, until a free one). */
static unsigned hash_name(const char *k, size_t kl) {
  return ((unsigned)kl * 31u + (unsigned char)k[0] * 7u + (unsigned char)k[kl - 1]) % ITNIO_INDEX_SIZE;
}

/* Fills a schema's index, and its lists' (0: done; else the schema is too big for it). */
static int build_index(const itnio_schema *s) {
  if (s->nfields >= ITNIO_INDEX_SIZE / 2) return 1;
  memset(s->index, 0, ITNIO_INDEX_SIZE);
  for (int i = 0; i < s->nfields; i++) {
    unsigned h = hash_name(s->fields[i].name, s->fields[i].namelen);
    while (s->index[h]) h = (h + 1) % ITNIO_INDEX_SIZE;
    s->index[h] = (unsigned char)(i + 1);
    if (s->fields[i].items && build_index(s->fields[i].items)) return 1;
  }
  return 0;
}

static const char *problem;
static int prepared;
static pthread_mutex_t prepare_lock = PTHREAD_MUTEX_INITIALIZER;

/* Once per process: the tables checked, and the indexes built (read only from then on).
 * Every luaopen takes the lock, not only the first: the lock orders the first one's writes
 * before every other thread's reads in a way helgrind, DRD and TSan all see (helgrind does
 * not model pthread_once, and took the index for a race). */
const char *itnio_schema_problem(void) {
  const char *bad;
  if (pthread_mutex_lock(&prepare_lock) != 0) return "(the schema lock failed)";
  if (!prepared) {
    for (int i = 0; i < itnio_nendpoints && !problem; i++) {
      problem = schema_problem(itnio_endpoints[i].schema);
      if (!problem && build_index(itnio_endpoints[i].schema)) problem = itnio_endpoints[i].schema->name;
    }
    prepared = 1;
  }
  bad = problem;
  pthread_mutex_unlock(&prepare_lock);
  return bad;
}

int itnio_schema_find(const itnio_schema *s, const char *k, size_t kl) {
  unsigned h;
  if (kl == 0 || kl > 255) return -1;
  for (h = hash_name(k, kl); s->index[h]; h = (h + 1) % ITNIO_INDEX_SIZE) {
    const itnio_field *f = &s->fields[s->index[h] - 1];
    if (f->namelen == kl && memcmp(f->name, k, kl) == 0) return s->index[h] - 1;
  }
  return -1;
}

int itnio_schema_suggest(const itnio_schema *s, const char *k, size_t kl) {
  for (int i = 0; i < s->nfields; i++)
    if (s->fields[i].namelen == kl && strncasecmp(s->fields[i].name, k, kl) == 0) return i;
  return -1;
}
