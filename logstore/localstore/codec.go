package localstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

// Statuses are stored as small integers: smaller rows and indexes than the words.
var statusCodes = map[string]int64{
	logstore.StatusWaiting: 0,
	logstore.StatusRunning: 1,
	logstore.StatusSuccess: 2,
	logstore.StatusFail:    3,
}

var statusNames = []string{logstore.StatusWaiting, logstore.StatusRunning, logstore.StatusSuccess, logstore.StatusFail}

const (
	codeSuccess = 2
	codeFail    = 3
)

func statusName(code int64) string {
	if code < 0 || int(code) >= len(statusNames) {
		return fmt.Sprintf("unknown(%d)", code)
	}
	return statusNames[code]
}

// msOrNil is a time as Unix milliseconds, NULL for the zero time.
func msOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func jsonOrNil(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

// stateArgs are the insertStateSQL arguments of r.
func stateArgs(r *logstore.Row) ([]any, error) {
	var errText any
	if r.Error != nil {
		b, err := json.Marshal(r.Error)
		if err != nil {
			return nil, fmt.Errorf("row %s: encode error: %w", r.ID, err)
		}
		errText = string(b)
	}
	return []any{
		r.ID, r.NodeID, r.RecordedAt.UnixMilli(), int64(r.Seq), r.CreatedAt.UnixMilli(), r.Kind,
		r.FullName, r.Sender, r.EventType, statusCodes[r.Status], r.Stage, r.RequestID, r.ParentNodeID,
		int64(r.Attempt), msOrNil(r.StartTime), msOrNil(r.EndTime), r.Duration,
		jsonOrNil(r.Kwargs), jsonOrNil(r.Result), errText, r.Host, jsonOrNil(r.Logs), r.EventID,
	}, nil
}

// nodeArgs are the upsertNodesSQL arguments of r as its node's latest state.
func nodeArgs(r *logstore.Row) []any {
	code := ""
	if r.Error != nil {
		code = r.Error.Code
	}
	return []any{
		r.NodeID, r.FullName, statusCodes[r.Status], r.CreatedAt.UnixMilli(), r.RecordedAt.UnixMilli(),
		int64(r.Seq), r.RequestID, r.ParentNodeID, r.Sender, r.Host, code, r.Duration, r.ID,
	}
}

// scanRows reads stateCols rows into logstore rows.
func scanRows(rows *sql.Rows) ([]logstore.Row, error) {
	defer rows.Close()
	out := []logstore.Row{}
	for rows.Next() {
		var (
			r                          logstore.Row
			status, attempt, seq       int64
			created, recorded          int64
			start, end                 sql.NullInt64
			kwargs, result, errT, logs []byte
			eventID                    sql.NullString
		)
		if err := rows.Scan(&r.ID, &r.Kind, &r.FullName, &r.Sender, &r.EventType, &status, &r.Stage,
			&r.RequestID, &r.NodeID, &r.ParentNodeID, &attempt, &created, &recorded, &seq,
			&start, &end, &r.Duration, &kwargs, &result, &errT, &r.Host, &logs, &eventID); err != nil {
			return nil, fmt.Errorf("read row: %w", err)
		}
		r.Status = statusName(status)
		r.EventID = eventID.String
		r.Attempt = int(attempt)
		r.Seq = uint32(seq)
		r.CreatedAt = fromMS(created)
		r.RecordedAt = fromMS(recorded)
		if start.Valid {
			r.StartTime = fromMS(start.Int64)
		}
		if end.Valid {
			r.EndTime = fromMS(end.Int64)
		}
		if len(kwargs) > 0 {
			r.Kwargs = json.RawMessage(kwargs)
		}
		if len(result) > 0 {
			r.Result = json.RawMessage(result)
		}
		if len(logs) > 0 {
			r.Logs = json.RawMessage(logs)
		}
		if len(errT) > 0 {
			r.Error = &logstore.RowError{}
			if err := json.Unmarshal(errT, r.Error); err != nil {
				return nil, fmt.Errorf("read row %s: decode error: %w", r.ID, err)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rows: %w", err)
	}
	return out, nil
}
