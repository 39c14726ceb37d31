package sqlgen

import (
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/models"
)

// maxRowProblems bounds how many bad rows one error lists: a bad import of 100k rows should say
// what is wrong, not repeat it 100k times.
const maxRowProblems = 10

// NormalizeRows applies models.Normalize to every row of a bulk insert, naming the row of each
// problem ("row 7: ..."), so both backends refuse a bad batch alike before touching the database.
func NormalizeRows(s models.Schema, in []models.Row) ([]models.Row, error) {
	out := make([]models.Row, len(in))
	var errs []error
	for i, r := range in {
		n, err := models.Normalize(s, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("row %d: %w", i, err))
			if len(errs) == maxRowProblems {
				errs = append(errs, errors.New("(more rows have problems; fix these first)"))
				break
			}
			continue
		}
		out[i] = n
	}
	return out, errors.Join(errs...)
}

// FullRow is the stored row for what an insert wrote: every field, NULL where none was given,
// and its id. Bulk inserts return it instead of reading each row back.
func FullRow(fields []models.Field, r models.Row, id int64) models.Row {
	out := make(models.Row, len(fields))
	for _, f := range fields {
		out[f.Name] = r[f.Name]
	}
	out[models.IDField] = id
	return out
}
