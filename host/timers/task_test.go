package timers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The stores and the Runner are tested against real backends by timerstest (run from
// localtimers and redistimers); these are the pure helpers every backend shares.

func TestNewID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 10000 {
		id := NewID()
		require.Regexp(t, `^task_[a-z2-7]{20}$`, id)
		require.False(t, seen[id], "duplicate id %s", id)
		seen[id] = true
	}
}

func TestListQueryNormalize(t *testing.T) {
	t.Parallel()
	q, err := ListQuery{}.Normalize()
	require.NoError(t, err)
	require.Equal(t, ListQuery{Page: 1, PageSize: DefaultPageSize}, q)
	require.Zero(t, q.Offset())
	q, err = ListQuery{FullName: "tasks.A", Status: StatusFail, Page: 3, PageSize: 50}.Normalize()
	require.NoError(t, err)
	require.Equal(t, 100, q.Offset())
	q, err = ListQuery{PageSize: MaxPageSize}.Normalize()
	require.NoError(t, err)
	require.Equal(t, MaxPageSize, q.PageSize)

	for _, bad := range []ListQuery{{Status: "done"}, {Page: -1}, {PageSize: -1}, {PageSize: MaxPageSize + 1}, {Page: 1 << 40, PageSize: 1000}} {
		_, err := bad.Normalize()
		require.ErrorIs(t, err, ErrInvalid, "%+v", bad)
	}
	_, err = ListQuery{Status: "done"}.Normalize()
	require.ErrorContains(t, err, `"done"`, "the message names the value")
}

func TestValidateCreate(t *testing.T) {
	t.Parallel()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	in := Task{FullName: "tasks.A", StartTime: at, Attempt: 7, Owner: "x", Result: 1, Error: &TaskError{}, CreatedAt: at}
	got, err := ValidateCreate(in)
	require.NoError(t, err)
	require.Regexp(t, `^task_`, got.ID)
	require.Equal(t, StatusWaiting, got.Status)
	require.Zero(t, got.Attempt, "store-set fields are cleared")
	require.Empty(t, got.Owner)
	require.Nil(t, got.Result)
	require.Nil(t, got.Error)
	require.True(t, got.CreatedAt.IsZero())

	long := strings.Repeat("x", MaxNameLen+1)
	for name, c := range map[string]struct {
		task Task
		msg  string
	}{
		"fullName":    {Task{StartTime: at}, "fullName is empty"},
		"startTime":   {Task{FullName: "tasks.A"}, "startTime is zero"},
		"year":        {Task{FullName: "tasks.A", StartTime: time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC)}, "out of range"},
		"status":      {Task{FullName: "tasks.A", StartTime: at, Status: StatusSuccess}, "status"},
		"long name":   {Task{FullName: long, StartTime: at}, "fullName is"},
		"long func":   {Task{FullName: "tasks.A", FuncName: long, StartTime: at}, "funcName is"},
		"bad utf8":    {Task{FullName: "tasks.\xff", StartTime: at}, "UTF-8"},
		"id space":    {Task{ID: "a b", FullName: "tasks.A", StartTime: at}, "taskId"},
		"id long":     {Task{ID: strings.Repeat("a", MaxIDLen+1), FullName: "tasks.A", StartTime: at}, "taskId"},
		"key long":    {Task{FullName: "tasks.A", StartTime: at, Key: strings.Repeat("k", MaxKeyLen+1)}, "key is"},
		"key utf8":    {Task{FullName: "tasks.A", StartTime: at, Key: "\xff"}, "key is not valid"},
		"argDict":     {Task{FullName: "tasks.A", StartTime: at, ArgDict: map[string]any{"c": make(chan int)}}, "argDict"},
		"waiting set": {Task{FullName: "tasks.A", StartTime: at, Status: StatusRunning}, "leave it empty"},
	} {
		_, err := ValidateCreate(c.task)
		require.ErrorIs(t, err, ErrInvalid, name)
		require.ErrorContains(t, err, c.msg, name)
	}
}

func TestValidateCreateRunning(t *testing.T) {
	t.Parallel()
	now := time.Now()
	got, err := ValidateCreateRunning(Task{FullName: "tasks.Cron"}, "h1", time.Second, now)
	require.NoError(t, err)
	require.True(t, got.StartTime.Equal(now), "zero StartTime means now")
	_, err = ValidateCreateRunning(Task{FullName: "tasks.Cron", Key: "k"}, "h1", time.Second, now)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = ValidateCreateRunning(Task{FullName: "tasks.Cron"}, "", time.Second, now)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = ValidateCreateRunning(Task{FullName: "tasks.Cron"}, "h1", 0, now)
	require.ErrorIs(t, err, ErrInvalid)
}

func TestValidateFinish(t *testing.T) {
	t.Parallel()
	b, err := ValidateFinish(StatusSuccess, map[string]any{"a": 1}, nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"a":1}`, string(b))
	b, err = ValidateFinish(StatusFail, nil, &TaskError{Code: "x"})
	require.NoError(t, err)
	require.Equal(t, "null", string(b))
	for _, c := range []struct {
		status string
		result any
		terr   *TaskError
	}{{StatusWaiting, nil, nil}, {StatusForcedEnd, nil, nil}, {StatusSuccess, nil, &TaskError{}}, {StatusSuccess, func() {}, nil}} {
		_, err := ValidateFinish(c.status, c.result, c.terr)
		require.ErrorIs(t, err, ErrInvalid, "%+v", c)
	}
}

func TestStatuses(t *testing.T) {
	t.Parallel()
	for s, fin := range map[string]bool{StatusWaiting: false, StatusRunning: false, StatusSuccess: true, StatusFail: true, StatusForcedEnd: true} {
		require.Equal(t, fin, Finished(s), s)
		require.True(t, ValidStatus(s), s)
	}
	require.False(t, ValidStatus("done"))
	require.False(t, Finished(""))
}

type coded struct{}

func (coded) Error() string               { return "coded" }
func (coded) TaskError() *TaskError       { return &TaskError{Message: "m", Stack: "s"} }
func (e *nilCoded) Error() string         { return "nil coded" }
func (e *nilCoded) TaskError() *TaskError { return nil }

type nilCoded struct{}

func TestToTaskError(t *testing.T) {
	t.Parallel()
	require.Equal(t, &TaskError{Code: "error", Message: "plain"}, toTaskError(errors.New("plain")))
	require.Equal(t, &TaskError{Code: "error", Message: "m", Stack: "s"}, toTaskError(fmt.Errorf("wrapped: %w", coded{})),
		"a wrapped TaskError is found; an empty code becomes error")
	require.Equal(t, &TaskError{Code: "error", Message: "nil coded"}, toTaskError(&nilCoded{}))
}
