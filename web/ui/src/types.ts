// Shapes of the API's answers (docs/reference.md §2.11, §4.6, §6.3).

export interface ElementSummary {
  fullName: string;
  title: string;
  type: string;
  layer: "meta" | "type" | "instance";
  origin: "app" | "parent" | "builtin";
  overrides?: string;
  problems?: number;
  brokenOnDisk?: boolean;
}

// FieldSchema and ElementSchema are the registry's schema of an element's e.json
// (GET /api/elements/{fullName}/schema): the form is built from them.
export interface FieldSchema {
  type: string;
  required?: boolean;
  default?: unknown;
  hasDefault?: boolean;
  enum?: unknown[];
  items?: FieldSchema;
  properties?: Record<string, FieldSchema>;
  signed?: boolean;
  meta?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  title?: string;
  description?: string;
}

export interface ElementSchema {
  fullName: string;
  layer: string;
  fields: Record<string, FieldSchema>;
  universal: Record<string, FieldSchema>;
  inherited?: Record<string, unknown>;
}

export interface Problem {
  element?: string;
  file?: string;
  line?: number;
  column?: number;
  code: string;
  message: string;
}

export interface ElementDetail extends ElementSummary {
  definition: Record<string, unknown>;
  resolved: Record<string, unknown>;
  files: Record<string, string>;
  errors: Problem[];
  version?: string | number;
  schema?: ElementSchema | null;
  brokenOnDisk?: boolean;
  running?: { definition: Record<string, unknown>; resolved: Record<string, unknown>; files: Record<string, string> };
}

export interface LogEntry {
  time: string;
  level: string;
  message: string;
}

export interface LogRow {
  id: string;
  kind: string;
  fullName: string;
  sender: string;
  eventType: string;
  eventId: string;
  status: string;
  stage: string;
  requestId: string;
  nodeId: string;
  parentNodeId: string;
  attempt: number;
  createdAt: string;
  recordedAt: string;
  startTime: string | null;
  endTime: string | null;
  duration: number;
  kwargs: unknown;
  result: unknown;
  error: { code: string; message: string; stack?: string } | null;
  logs: LogEntry[] | null;
  host: string;
}

export interface Page<T> {
  totalCount: number;
  rowDatas: T[];
}

export interface TaskTemplate {
  title: string;
  taskType: string;
  repeatType: string;
  fullName: string;
  // With the task center running (GET /api/tasks/templates): what it runs, whether it is
  // enabled, its schedule in words, its next tick.
  funcName?: string;
  enabled?: boolean;
  schedule?: string;
  nextFireTime?: string;
}

export interface TaskRecord {
  taskId: string;
  fullName: string;
  funcName: string;
  taskType: string;
  argDict: unknown;
  startTime: string;
  status: string;
  result: unknown;
  error: { code: string; message: string; stack?: string } | null;
  requestId: string;
  nodeId: string;
  attempt: number;
  host: string;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
}

export interface Health {
  status: string;
  version: string;
  app: string;
  problems: number;
  backends: Record<string, string>;
}
