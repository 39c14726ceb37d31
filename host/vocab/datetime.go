package vocab

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// DatetimeLayout is the "YYYY-MM-DD HH:mm:ss" form in which Trellis hands datetimes back to
// JavaScript (docs/reference.md §2), always read and written in the app's timezone.
const DatetimeLayout = "2006-01-02 15:04:05"

// layoutsInLoc are accepted string forms without a zone of their own; they are read in the app's
// timezone, because that is what a user typing "2024-05-01 08:00:00" means.
var layoutsInLoc = []string{
	DatetimeLayout,
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// layoutsWithZone are ISO-8601 forms that carry their own offset.
var layoutsWithZone = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05.999999999Z0700",
}

// ParseDatetime turns any datetime form the JavaScript API accepts into a time.Time, so every
// built-in service reads datetime arguments the same way: "YYYY-MM-DD HH:mm:ss" (and
// "YYYY-MM-DD") in loc, ISO-8601/RFC 3339 with an offset, epoch milliseconds as a number
// (float64, int, int64, json.Number), or a time.Time (which a JS Date becomes). loc nil means UTC.
func ParseDatetime(v any, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	switch t := v.(type) {
	case time.Time:
		return t, nil
	case *time.Time:
		if t != nil {
			return *t, nil
		}
	case string:
		return parseDatetimeString(t, loc)
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			break
		}
		return time.UnixMilli(int64(t)).Add(time.Duration(math.Mod(t, 1) * float64(time.Millisecond))), nil
	case float32:
		return ParseDatetime(float64(t), loc)
	case int:
		return time.UnixMilli(int64(t)), nil
	case int32:
		return time.UnixMilli(int64(t)), nil
	case int64:
		return time.UnixMilli(t), nil
	case uint64:
		if t <= math.MaxInt64 {
			return time.UnixMilli(int64(t)), nil
		}
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return time.UnixMilli(n), nil
		}
		if f, err := t.Float64(); err == nil {
			return ParseDatetime(f, loc)
		}
	}
	return time.Time{}, fmt.Errorf("%w: got %s; use \"YYYY-MM-DD HH:mm:ss\", ISO-8601, epoch milliseconds or a Date",
		ErrInvalidDatetime, describeDatetimeArg(v))
}

func parseDatetimeString(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range layoutsWithZone {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range layoutsInLoc {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q; use \"YYYY-MM-DD HH:mm:ss\", ISO-8601, epoch milliseconds or a Date",
		ErrInvalidDatetime, s)
}

func describeDatetimeArg(v any) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprintf("%T %v", v, v)
}

// FormatDatetime writes t the way Trellis returns datetimes to JavaScript: "YYYY-MM-DD HH:mm:ss"
// in loc (nil = UTC), so every service answers in the app's timezone.
func FormatDatetime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(DatetimeLayout)
}

// ErrInvalidDatetime is wrapped by ParseDatetime when a value is no datetime form it accepts.
var ErrInvalidDatetime = Sentinel(CodeInvalidArgument, "invalid datetime")
