/* The verdicts' names, kinds, counters and sentences, by number: the rows of ms_reasons.h,
 * which everything that prints or counts a reason, in C or in Python, reads through here. */
#include "ministack.h"

struct reason_desc {
    const char *name;
    int kind;
    int counted;
    const char *sentence;
    const char *detail[2];  /* tx, rx */
};

static const struct reason_desc reasons[MS_R_COUNT] = {
#define MS_REASON_DESC(number, id, name, kind, counted, sentence, tx_detail, rx_detail) \
    [MS_R_##id] = {name, MS_KIND_##kind, MS_COUNTED_##counted, sentence, {tx_detail, rx_detail}},
    MS_REASONS(MS_REASON_DESC)
#undef MS_REASON_DESC
};

/* Rows in number order with no gap: then each enumerator is its row's number, and
 * MS_R_COUNT is the number of rows. */
#define MS_REASON_IN_ORDER(number, id, ...) \
    _Static_assert(MS_R_##id == number, "ms_reasons.h: row " #id " is out of number order");
MS_REASONS(MS_REASON_IN_ORDER)
#undef MS_REASON_IN_ORDER

static const struct reason_desc *desc(int r)
{
    return r >= 0 && r < MS_R_COUNT ? &reasons[r] : NULL;
}

const char *ms_reason_name(int r)
{
    const struct reason_desc *d = desc(r);
    return d ? d->name : "unknown";
}

const char *ms_reason_sentence(int r)
{
    const struct reason_desc *d = desc(r);
    return d ? d->sentence : "";
}

const char *ms_reason_detail(int r, int rx)
{
    const struct reason_desc *d = desc(r);
    return d ? d->detail[rx != 0] : "";
}

int ms_reason_kind(int r)
{
    const struct reason_desc *d = desc(r);
    return d ? d->kind : -1;
}

const char *ms_reason_kind_name(int kind)
{
    static const char *const names[] = {
        [MS_KIND_FORWARD] = "forward", [MS_KIND_DROP] = "drop", [MS_KIND_LOCAL] = "local",
        [MS_KIND_TO_HOST] = "to-host", [MS_KIND_RETIRED] = "retired"};
    return kind >= 0 && kind <= MS_KIND_RETIRED ? names[kind] : "unknown";
}

int ms_reason_counted(int r)
{
    const struct reason_desc *d = desc(r);
    return d ? d->counted : -1;
}
