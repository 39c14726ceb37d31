package web

// The OpenAPI 3 document of the HTTP API (GET /api/openapi.json). It is written here, route by
// route, beside the code, and openapi_test.go holds it to the routes echo has registered: a
// route added without its entry, or an entry left after its route went, fails the build.

import (
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

func (s *Server) routeOpenAPI(e *echo.Echo) {
	e.GET("/api/openapi.json", s.openAPI)
}

func (s *Server) openAPI(c echo.Context) error {
	return c.JSON(http.StatusOK, openAPIDocument(s.deps.App.Version()))
}

// apiOp is one operation of the document.
type apiOp struct {
	method, path string // path as echo spells it (":fullName")
	summary      string
	query        []apiParam
	body         any // a schema; nil: no body
	bodyRequired bool
	status       int // of success; default 200
	result       any // a schema of the success body
	errors       []int
	public       bool   // no token needed
	contentType  string // of the success body; default application/json
}

type apiParam struct {
	name, description string
	schema            any
	required          bool
}

// Schemas, as JSON objects.
func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
func str() map[string]any            { return map[string]any{"type": "string"} }
func integer() map[string]any        { return map[string]any{"type": "integer"} }
func boolean() map[string]any        { return map[string]any{"type": "boolean"} }
func anyValue() map[string]any       { return map[string]any{"description": "any JSON value"} }
func arrayOf(items any) map[string]any {
	return map[string]any{"type": "array", "items": items}
}
func object(required []string, props map[string]any) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}
func freeObject(desc string) map[string]any {
	return map[string]any{"type": "object", "additionalProperties": true, "description": desc}
}
func strMap(desc string) map[string]any {
	return map[string]any{"type": "object", "additionalProperties": str(), "description": desc}
}

// draftProps are the fields of an element draft in a request.
func draftProps() map[string]any {
	return map[string]any{
		"definition": map[string]any{"description": "the element's e.json: its text (kept byte for byte) or a JSON object",
			"oneOf": []any{str(), map[string]any{"type": "object"}}},
		"files": strMap("the element's other files by relative path (index.js, lib/util.js): .js, .json or .md"),
	}
}

func timeQuery(name, what string) apiParam {
	return apiParam{name: name, description: what + ": YYYY-MM-DD HH:mm:ss in the app timezone, ISO-8601 or epoch milliseconds", schema: str()}
}

var logQueryParams = []apiParam{
	{name: "fullName", description: "the handling element", schema: str()},
	timeQuery("startTime", "nodes created at or after"),
	timeQuery("endTime", "nodes created before"),
	{name: "status", description: "latest status of the node", schema: map[string]any{"type": "string", "enum": []string{"waiting", "running", "success", "fail"}}},
	{name: "stage", description: "stage of the latest state: deadLettered (the dead letters), retryScheduled, resent, awaitingCallback…", schema: map[string]any{"type": "string", "enum": []string{
		"queued", "resent", "broadcast", "running", "done", "failed", "retryScheduled", "requeued", "deadLettered",
		"awaitingCallback", "callback", "callbackFailed", "callbackTimeout", "scheduled", "forcedEnd"}}},
	{name: "page", schema: integer()}, {name: "pageSize", description: "at most 1000", schema: integer()},
	{name: "sender", schema: str()}, {name: "host", schema: str()}, {name: "errorCode", schema: str()},
	{name: "text", description: "text found, in any case, in the kwargs, the error code or the error message of the latest state (at most 256 bytes)", schema: str()},
	{name: "kwargs.<field>", description: "a top-level kwargs field compared as JSON text (strings unquoted); any number of them", schema: str()},
}

// apiOps is every route of the API, in the order of docs/reference.md §6.3.
var apiOps = []apiOp{
	{method: "GET", path: "/api/health", summary: "Health of the host: status, version and backends for everyone; the app, its problems, each listener's lag and the log writer only with the token (or a session)", public: true,
		result: object(nil, map[string]any{"status": map[string]any{"type": "string", "enum": []string{"ok", "degraded"}}, "version": str(), "app": str(),
			"problems": integer(), "backends": strMap("storage per part"), "lag": freeObject("each listener's backlog per group"), "log": freeObject("the log writer's counters")})},
	{method: "GET", path: "/api/openapi.json", summary: "This document", public: true, result: freeObject("an OpenAPI 3 document")},
	{method: "POST", path: "/api/session", summary: "Log in the browser: trade the admin token for an HttpOnly session cookie", public: true,
		body: object([]string{"token"}, map[string]any{"token": str()}), bodyRequired: true,
		result: object(nil, map[string]any{"expiresAt": str()}), errors: []int{400, 401}},
	{method: "DELETE", path: "/api/session", summary: "Log out: forget the session and clear its cookie", public: true,
		result: object(nil, map[string]any{"loggedOut": boolean()})},
	{method: "GET", path: "/api/elements", summary: "Every element of the resolved app", result: arrayOf(ref("ElementSummary"))},
	{method: "GET", path: "/api/elements/:fullName", summary: "One element as on disk: definition, files, their problems, version, schema; running: the last good version when the disk files are broken", result: ref("Element"), errors: []int{400, 404}},
	{method: "GET", path: "/api/elements/:fullName/schema", summary: "The fields its e.json may have: the merged schema of its Meta → Type chain, as validation reads it", result: ref("ElementSchema"), errors: []int{400, 404}},
	{method: "PUT", path: "/api/elements/:fullName", summary: "Create or replace an app element (validated first; written in one rename)",
		query: []apiParam{{name: "force", description: "skip the version check", schema: boolean()}},
		body:  object([]string{"definition"}, merge(draftProps(), map[string]any{"version": map[string]any{"type": "string", "description": "the version GET answered; absent = create only"}})), bodyRequired: true,
		result: ref("SaveResult"), errors: []int{400, 409, 413, 422, 503}},
	{method: "DELETE", path: "/api/elements/:fullName", summary: "Delete an app element's directory (an override brings back what it replaced)",
		query:  []apiParam{{name: "version", description: "the version GET answered (required unless force)", schema: str()}, {name: "force", schema: boolean()}},
		result: object(nil, map[string]any{"fullName": str(), "deleted": boolean(), "current": boolean(), "restored": str()}), errors: []int{400, 404, 409, 422, 503}},
	{method: "POST", path: "/api/elements/:fullName/check", summary: "Validate a draft as a save would (the whole app with the draft applied), writing and running nothing: its problems, none = []",
		body: object([]string{"definition"}, draftProps()), bodyRequired: true,
		result: object([]string{"problems"}, map[string]any{"problems": arrayOf(ref("Problem"))}), errors: []int{400, 413, 503}},
	{method: "POST", path: "/api/elements/:fullName/run", summary: "Test run of a draft, not saved, not logged",
		body: object([]string{"definition", "function"}, merge(draftProps(), map[string]any{"function": str(),
			"args": map[string]any{"description": "positional arguments, or an object: a listener's sample kwargs, a task's argDict, a service's one argument",
				"oneOf": []any{arrayOf(anyValue()), map[string]any{"type": "object"}}}})), bodyRequired: true,
		result: ref("RunResult"), errors: []int{400, 413, 422, 503}},
	{method: "POST", path: "/api/services/:fullName/:function", summary: "Call a service function; logged as a service node",
		body:   map[string]any{"description": "an object: the one argument (a built-in's named arguments); an array: positional arguments; empty: none", "oneOf": []any{map[string]any{"type": "object"}, arrayOf(anyValue())}},
		result: object(nil, map[string]any{"result": anyValue(), "logs": arrayOf(ref("LogEntry"))}), errors: []int{400, 404, 413, 422, 503}},
	{method: "POST", path: "/api/events/send", summary: "sendEvent",
		body: object([]string{"sender", "kwargs"}, map[string]any{"sender": str(), "kwargs": map[string]any{"type": "object"}, "eventType": str()}), bodyRequired: true,
		result: object(nil, map[string]any{"requestId": str(), "eventId": str(), "nodeIds": arrayOf(str()), "subscribers": arrayOf(str()), "note": str()}), errors: []int{400, 413, 503}},
	{method: "GET", path: "/api/events/logs", summary: "getEventLog: the latest state of each node, newest first", query: logQueryParams, result: ref("Page"), errors: []int{400, 503}},
	{method: "GET", path: "/api/events/requests/:requestId", summary: "getEventLogByRequestId: every node of a request", result: arrayOf(ref("LogRow")), errors: []int{400, 404, 503}},
	{method: "GET", path: "/api/events/requests/:requestId/nodes/:nodeId", summary: "getEventLogByNodeId: a node and its descendants", result: arrayOf(ref("LogRow")), errors: []int{400, 404, 503}},
	{method: "GET", path: "/api/events/nodes/:nodeId/attempts", summary: "Every recorded state of one node, oldest first", result: arrayOf(ref("LogRow")), errors: []int{400, 503}},
	{method: "GET", path: "/api/events/listeners", summary: "Every event listener of the running app version: sender, type, handling, retry policy, webhook URL (never its secret) and live lag",
		result: object(nil, map[string]any{"listeners": arrayOf(ref("Listener")), "lagError": map[string]any{"type": "string", "description": "why the lag is missing (the bus did not answer)"}}), errors: []int{503}},
	{method: "POST", path: "/api/events/resend", summary: "Bulk resend of the nodes the filters match (status defaults to fail)", query: logQueryParams,
		result: object(nil, map[string]any{"resent": arrayOf(object(nil, map[string]any{"nodeId": str(), "attempt": integer()})),
			"skipped": arrayOf(object(nil, map[string]any{"nodeId": str(), "reason": str()})), "truncated": boolean()}), errors: []int{400, 503}},
	{method: "POST", path: "/api/nodes/:nodeId/:op", summary: "A node operation: resend → {nodeId, attempt}; callback (body: the node's result, or {error}) → {nodeId, status}; replay (body: {definition, files, fullName?}) → Replay; pause, resume, skip (no body), retry (body: the node's new kwargs, optional), forcedFail (body: {reason}, optional) → {nodeId, status, stage, attempt} (retry: {nodeId, attempt}); 409 names the node's state when it does not allow the operation; 501 for a task node",
		body:   map[string]any{"description": "callback: the result; replay: {definition, files, fullName?} (fullName: the element the draft is of; a node of another element answers 409); retry: the new kwargs (optional); forcedFail: {reason} (optional); others: none"},
		result: map[string]any{"oneOf": []any{freeObject("resend, callback, pause, resume, retry, skip, forcedFail"), ref("Replay")}}, errors: []int{400, 404, 409, 422, 501, 503}},
	{method: "POST", path: "/api/requests/:requestId/:op", summary: "A request operation: pause, resume or revoke → {requestId, state, nodes} (the nodes it changed); 409 names the request's state (running, paused, revoked, finished) when it does not allow the operation",
		result: freeObject("requestId, state, nodes"), errors: []int{400, 404, 409, 503}},
	{method: "GET", path: "/api/tasks/templates", summary: "getTaskTmplList, each row with what it runs, whether it is enabled, its schedule and its next tick (with the task center running)",
		query: []apiParam{{name: "q", description: "part of a title or fullName", schema: str()}}, result: arrayOf(ref("TaskTemplate"))},
	{method: "POST", path: "/api/tasks/templates/:fullName/:op", summary: "A template operation: enable, disable (set enabled in its e.json, validated and hot-reloaded → the template) or run (a task due now with the template's argDict or the body's → the task record)",
		body:   object(nil, map[string]any{"argDict": map[string]any{"type": "object", "description": "run only: the argDict instead of the template's"}}),
		result: map[string]any{"oneOf": []any{ref("TaskTemplate"), ref("Task")}}, errors: []int{400, 404, 409, 422, 503}},
	{method: "POST", path: "/api/tasks", summary: "createTimerTask",
		body: object([]string{"fullName", "startTime", "funcName", "taskType"}, map[string]any{"fullName": str(), "startTime": str(), "funcName": str(), "taskType": str(), "argDict": map[string]any{"type": "object"}}), bodyRequired: true,
		result: ref("Task"), errors: []int{400, 404, 503}},
	{method: "GET", path: "/api/tasks", summary: "Task records, newest first",
		query:  []apiParam{{name: "fullName", schema: str()}, {name: "status", schema: str()}, {name: "page", schema: integer()}, {name: "pageSize", schema: integer()}},
		result: ref("Page"), errors: []int{400, 503}},
	{method: "GET", path: "/api/tasks/:taskId", summary: "A task record", result: ref("Task"), errors: []int{400, 404, 503}},
	{method: "POST", path: "/api/tasks/:taskId/:op", summary: "A task operation: forcedEnd → {taskId, status}",
		result: object(nil, map[string]any{"taskId": str(), "status": str()}), errors: []int{400, 404, 409, 503}},
	{method: "GET", path: "/api/models/:fullName/rows", summary: "Query a model's rows",
		query:  []apiParam{{name: "filter", description: "the JSON of a model filter", schema: str()}, {name: "orderBy", schema: str()}, {name: "page", schema: integer()}, {name: "pageSize", schema: integer()}},
		result: ref("Page"), errors: []int{400, 404, 503}},
	{method: "POST", path: "/api/models/:fullName/rows", summary: "An object creates one row (→ the row); an array imports rows (→ {imported})",
		body: map[string]any{"oneOf": []any{map[string]any{"type": "object"}, arrayOf(map[string]any{"type": "object"})}}, bodyRequired: true,
		result: map[string]any{"oneOf": []any{freeObject("the row"), object(nil, map[string]any{"imported": integer()})}}, errors: []int{400, 404, 409, 413, 422, 503}},
	{method: "GET", path: "/api/models/:fullName/rows/:id", summary: "One row", result: freeObject("the row"), errors: []int{400, 404, 503}},
	{method: "PATCH", path: "/api/models/:fullName/rows/:id", summary: "Update a row with an object of fields", body: map[string]any{"type": "object"}, bodyRequired: true,
		result: freeObject("the row"), errors: []int{400, 404, 409, 422, 503}},
	{method: "DELETE", path: "/api/models/:fullName/rows/:id", summary: "Delete a row", result: freeObject("the deleted row"), errors: []int{400, 404, 422, 503}},
	{method: "GET", path: "/api/analytics/summary", summary: "Per-element counts and latency percentiles over a time range",
		query:  []apiParam{timeQuery("start", "range start (default 24 h ago)"), timeQuery("end", "range end (default now)"), {name: "fullName", schema: str()}},
		result: freeObject("{start, end, elements: [{fullName, total, byStatus, failureRate, p50, p95, p99}]}"), errors: []int{400, 503}},
	{method: "GET", path: "/api/analytics/timeseries", summary: "Counts per clock-aligned bucket",
		query:  []apiParam{timeQuery("start", "range start"), timeQuery("end", "range end"), {name: "bucket", description: "1m to 1d, whole minutes (default 1h)", schema: str()}, {name: "fullName", schema: str()}},
		result: freeObject("{bucket, points: [{start, total, byStatus, failed, p95}]}"), errors: []int{400, 503}},
	{method: "GET", path: "/api/signals/stream", summary: "Signals as server-sent events (id: the bus id, event: the event_type, data: the signal as JSON); resumable with the Last-Event-ID header; an event gap when signals may be missing; a comment every 15 s",
		query: []apiParam{{name: "eventTypes", description: "comma-separated signal names to keep (default: all)", schema: str()},
			{name: "follow", description: "false: end after the signals held instead of waiting for more (default true)", schema: boolean()},
			{name: "lastEventId", description: "as the Last-Event-ID header, for clients that cannot set it", schema: str()}},
		contentType: "text/event-stream",
		result:      map[string]any{"type": "string", "description": "a text/event-stream; each data line is {id, event_type, data, at, requestId, nodeId, element, host}"}, errors: []int{400, 503}},
	{method: "GET", path: "/metrics", summary: "Prometheus metrics (docs/operations.md); needs the token unless the server runs with --metrics-public",
		contentType: "text/plain", result: map[string]any{"type": "string", "description": "the Prometheus text exposition format"}},
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

var echoParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// openAPIPath spells an echo path the OpenAPI way: ":fullName" → "{fullName}".
func openAPIPath(p string) string { return echoParam.ReplaceAllString(p, "{$1}") }

var errorStatuses = map[int]string{
	400: "invalid_argument: a malformed body, path or query", 401: "unauthorized: no or wrong token or session",
	403: "forbidden: an unsafe request authenticated by cookie from another origin", 404: "not_found",
	409: "conflict: the current state does not allow it (details carry what is current)", 413: "body_too_large",
	422: "invalid_element (details.problems) or a function that ran and failed (details: stack, file, line, column, logs)",
	500: "internal", 501: "not_implemented", 503: "unavailable: a backend down or a part not running",
}

var (
	openAPIOnce sync.Once
	openAPIDoc  map[string]any
)

// openAPIDocument builds the document once (the version is the host's, fixed while it runs).
func openAPIDocument(version string) map[string]any {
	openAPIOnce.Do(func() { openAPIDoc = buildOpenAPI(version) })
	return openAPIDoc
}

func buildOpenAPI(version string) map[string]any {
	paths := map[string]any{}
	for _, op := range apiOps {
		p := openAPIPath(op.path)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		params := []any{}
		for _, m := range echoParam.FindAllStringSubmatch(op.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": str()})
		}
		for _, q := range op.query {
			pm := map[string]any{"name": q.name, "in": "query", "schema": q.schema}
			if q.description != "" {
				pm["description"] = q.description
			}
			params = append(params, pm)
		}
		status := op.status
		if status == 0 {
			status = http.StatusOK
		}
		ok := map[string]any{"description": "success"}
		if op.result != nil {
			ct := op.contentType
			if ct == "" {
				ct = "application/json"
			}
			ok["content"] = map[string]any{ct: map[string]any{"schema": op.result}}
		}
		responses := map[string]any{itoa3(status): ok}
		if op.method == "PUT" && strings.HasPrefix(op.path, "/api/elements/") {
			responses["201"] = map[string]any{"description": "created", "content": ok["content"]}
		}
		errs := append([]int{}, op.errors...)
		if !op.public {
			errs = append(errs, 401, 403)
		}
		errs = append(errs, 500)
		for _, code := range errs {
			responses[itoa3(code)] = map[string]any{"$ref": "#/components/responses/E" + itoa3(code)}
		}
		o := map[string]any{"summary": op.summary, "operationId": operationID(op), "parameters": params, "responses": responses}
		if op.public {
			o["security"] = []any{}
		}
		if op.body != nil {
			o["requestBody"] = map[string]any{"required": op.bodyRequired, "content": map[string]any{"application/json": map[string]any{"schema": op.body}}}
		}
		item[strings.ToLower(op.method)] = o
	}
	responses := map[string]any{}
	for code, what := range errorStatuses {
		responses["E"+itoa3(code)] = map[string]any{"description": what,
			"content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "Trellis HTTP API", "version": version,
			"description": "JSON over HTTP; see docs/http-api.md and docs/reference.md §6. Authenticate with Authorization: Bearer <token>, or in a browser with the session cookie POST /api/session sets (unsafe methods then need a same-origin Origin)."},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []any{}}, map[string]any{"session": []any{}}},
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer":  map[string]any{"type": "http", "scheme": "bearer"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": sessionCookie},
			},
			"responses": responses,
			"schemas": map[string]any{
				"Error": object([]string{"error"}, map[string]any{"error": object([]string{"code", "message"}, map[string]any{
					"code": str(), "message": str(), "details": freeObject("problems, a JS stack, the current version…")})}),
				"Problem":  object([]string{"code", "message"}, map[string]any{"element": str(), "file": str(), "line": integer(), "column": integer(), "code": str(), "message": str()}),
				"LogEntry": object(nil, map[string]any{"time": str(), "level": str(), "message": str()}),
				"ElementSummary": object(nil, map[string]any{"fullName": str(), "title": str(), "type": str(),
					"layer": map[string]any{"type": "string", "enum": []string{"meta", "type", "instance"}}, "origin": map[string]any{"type": "string", "enum": []string{"app", "parent", "builtin"}}, "overrides": str(),
					"problems": integer(), "brokenOnDisk": boolean()}),
				"Element": object(nil, map[string]any{"fullName": str(), "layer": str(), "origin": str(), "overrides": str(),
					"definition": freeObject("its e.json"), "resolved": freeObject("with defaults and inherited values"), "files": strMap("name → text"),
					"errors": arrayOf(ref("Problem")), "version": map[string]any{"type": "string", "description": "app elements only: a hash of its files on disk"},
					"schema": ref("ElementSchema"), "brokenOnDisk": boolean(),
					"running": object(nil, map[string]any{"definition": freeObject("the running e.json"), "resolved": freeObject("the running resolved definition"), "files": strMap("name → text")})}),
				"ElementSchema": object(nil, map[string]any{"fullName": str(), "layer": str(), "fields": map[string]any{"type": "object", "additionalProperties": ref("FieldSchema")},
					"universal": map[string]any{"type": "object", "additionalProperties": ref("FieldSchema")}, "inherited": freeObject("an instance's values set by its Type")}),
				"FieldSchema": object([]string{"type"}, map[string]any{"type": str(), "required": boolean(), "default": anyValue(), "hasDefault": boolean(), "enum": arrayOf(anyValue()),
					"items": ref("FieldSchema"), "properties": map[string]any{"type": "object", "additionalProperties": ref("FieldSchema")}, "signed": boolean(), "meta": str(), "pattern": str(),
					"minimum": map[string]any{"type": "number"}, "maximum": map[string]any{"type": "number"}, "title": str(), "description": str()}),
				"SaveResult": object(nil, map[string]any{"fullName": str(), "version": str(), "created": boolean(), "current": boolean()}),
				"RunResult": object(nil, map[string]any{"result": anyValue(), "logs": arrayOf(ref("LogEntry")), "durationMs": integer(),
					"error": map[string]any{"nullable": true, "allOf": []any{ref("ErrorBody")}}}),
				"ErrorBody": object([]string{"code", "message"}, map[string]any{"code": str(), "message": str(), "details": freeObject("stack, element, file, line, column")}),
				"Replay": object(nil, map[string]any{"nodeId": str(), "fullName": str(), "kind": str(), "function": str(),
					"logged": object(nil, map[string]any{"status": str(), "result": anyValue(), "error": freeObject("the logged error")}), "draft": ref("RunResult")}),
				"Listener": object(nil, map[string]any{"fullName": str(), "sender": map[string]any{"type": "string", "description": "a fullName, * or prefix.*; a model listener's model"},
					"model": str(), "operate": arrayOf(str()), "fields": arrayOf(str()), "eventType": str(), "handler": str(),
					"handlerType": map[string]any{"type": "string", "enum": []string{"pool", "singleton", "broadcast"}}, "broadcastIdentifier": str(),
					"reliableDelivery": boolean(), "requeueOnError": boolean(), "timeout": str(), "enabled": boolean(),
					"retry":   object(nil, map[string]any{"policy": str(), "interval": str(), "maxAttempts": integer(), "window": str(), "maxInterval": str()}),
					"webhook": map[string]any{"nullable": true, "allOf": []any{object(nil, map[string]any{"url": str(), "mode": str(), "timeout": str()})}},
					"lag": map[string]any{"nullable": true, "allOf": []any{object(nil, map[string]any{"pending": integer(), "undelivered": integer(),
						"groups": arrayOf(object(nil, map[string]any{"group": str(), "pending": integer(), "undelivered": integer(), "consumers": integer()}))})}}}),
				"LogRow": freeObject("a row of the execution log (docs/reference.md §2.11)"),
				"Task":   freeObject("a task record (docs/reference.md §4.6)"),
				"TaskTemplate": object([]string{"title", "taskType", "repeatType", "fullName"}, map[string]any{"title": str(), "taskType": str(), "repeatType": str(), "fullName": str(),
					"funcName": str(), "enabled": boolean(), "schedule": map[string]any{"type": "string", "description": "when it runs, in words; absent for once templates"},
					"nextFireTime": map[string]any{"type": "string", "description": "the next tick (YYYY-MM-DD HH:mm:ss, app timezone); absent when none is scheduled"}}),
				"Page": object(nil, map[string]any{"totalCount": integer(), "rowDatas": arrayOf(map[string]any{"type": "object"})}),
			},
		},
	}
}

func operationID(op apiOp) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(op.method))
	for _, seg := range strings.Split(strings.TrimPrefix(op.path, "/api/"), "/") {
		seg = strings.TrimPrefix(seg, ":")
		seg = strings.NewReplacer(".", "", "-", "").Replace(seg)
		if seg != "" {
			b.WriteString(strings.ToUpper(seg[:1]) + seg[1:])
		}
	}
	return b.String()
}

func itoa3(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}
