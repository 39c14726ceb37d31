package web

import (
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/modelrt"
	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/vocab"
)

func (s *Server) routeModels(e *echo.Echo) {
	e.GET("/api/models/:fullName/rows", s.queryRows)
	e.POST("/api/models/:fullName/rows", s.createRows)
	e.GET("/api/models/:fullName/rows/:id", s.getRow)
	e.PATCH("/api/models/:fullName/rows/:id", s.updateRow)
	e.DELETE("/api/models/:fullName/rows/:id", s.deleteRow)
}

func (s *Server) modelRuntime(c echo.Context) (Models, string, error) {
	name, err := fullNameParam(c, "fullName")
	if err != nil {
		return nil, "", err
	}
	rt := s.deps.Models
	if rt == nil {
		return nil, "", errUnavailable("model storage is not running on this host")
	}
	return rt, name, nil
}

// oneRow reads the model and row id of a /rows/{id} route.
func (s *Server) oneRow(c echo.Context) (Models, string, int64, error) {
	rt, model, err := s.modelRuntime(c)
	if err != nil {
		return nil, "", 0, err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, "", 0, errBadRequest("row id %q is not a positive whole number", c.Param("id"))
	}
	return rt, model, id, nil
}

// queryRows lists rows: ?filter=<JSON object>&orderBy=-field,id&page=&pageSize=.
func (s *Server) queryRows(c echo.Context) error {
	rt, model, err := s.modelRuntime(c)
	if err != nil {
		return err
	}
	q := models.Query{OrderBy: c.QueryParam("orderBy")}
	if f := c.QueryParam("filter"); f != "" {
		v, err := vocab.DecodeJSON([]byte(f))
		if err != nil {
			return errBadRequest("filter is not valid JSON: %v", err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return errBadRequest("filter must be a JSON object such as {\"status\": \"paid\"}")
		}
		q.Filter = m
	}
	if q.Page, err = intParam(c, "page"); err != nil {
		return err
	}
	if q.PageSize, err = intParam(c, "pageSize"); err != nil {
		return err
	}
	res, err := rt.Query(c.Request().Context(), model, q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// createRows creates one row (a JSON object body) or imports many (a JSON array of objects).
func (s *Server) createRows(c echo.Context) error {
	rt, model, err := s.modelRuntime(c)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return err
	}
	v, err := vocab.DecodeJSON(body)
	if err != nil {
		return errBadRequest("request body is not valid JSON: %v", err)
	}
	switch b := v.(type) {
	case map[string]any:
		row, err := rt.Create(c.Request().Context(), model, b, modelrt.Caller{})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, row)
	case []any:
		rows := make([]map[string]any, len(b))
		for i, r := range b {
			m, ok := r.(map[string]any)
			if !ok {
				return errBadRequest("row %d of the import is not a JSON object", i)
			}
			rows[i] = m
		}
		n, err := rt.Import(c.Request().Context(), model, rows, modelrt.Caller{})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"imported": n})
	default:
		return errBadRequest("send a row as a JSON object, or rows to import as a JSON array of objects")
	}
}

func (s *Server) getRow(c echo.Context) error {
	rt, model, id, err := s.oneRow(c)
	if err != nil {
		return err
	}
	row, err := rt.Get(c.Request().Context(), model, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, row)
}

func (s *Server) updateRow(c echo.Context) error {
	rt, model, id, err := s.oneRow(c)
	if err != nil {
		return err
	}
	patch, err := readAnyObject(c)
	if err != nil {
		return err
	}
	row, err := rt.Update(c.Request().Context(), model, id, patch, modelrt.Caller{})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, row)
}

func (s *Server) deleteRow(c echo.Context) error {
	rt, model, id, err := s.oneRow(c)
	if err != nil {
		return err
	}
	row, err := rt.Delete(c.Request().Context(), model, id, modelrt.Caller{})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, row)
}
