// Which of the newer routes this host answers. Nothing is faked: a route the host does not have
// yet is shown disabled with the reason.
//
// The host's OpenAPI document (GET /api/openapi.json) says it when it names the route. Otherwise
// the route is probed with an invalid fullName or id ("probe..x") and a body that is not an
// object, which a route that exists rejects (400) before doing anything, and which a route that
// does not exist answers with the "no API route" (or "no node operation") 404.

import { ApiError, api, get } from "./api";

export type Feature = "writeElements" | "testRun" | "replay" | "check" | "openapi";

export const featureRoutes: Record<Exclude<Feature, "openapi">, { method: string; path: string; probe: string }> = {
  writeElements: { method: "put", path: "/api/elements/{}", probe: "/api/elements/probe..x" },
  testRun: { method: "post", path: "/api/elements/{}/run", probe: "/api/elements/probe..x/run" },
  replay: { method: "post", path: "/api/nodes/{}/replay", probe: "/api/nodes/probe..x/replay" },
  check: { method: "post", path: "/api/elements/{}/check", probe: "/api/elements/probe..x/check" },
};

let detected: Promise<Record<Feature, boolean>> | null = null;

function normalise(p: string): string {
  return p.replace(/\{[^}]*\}/g, "{}").replace(/:[A-Za-z_]+/g, "{}");
}

async function detect(): Promise<Record<Feature, boolean>> {
  const out: Record<Feature, boolean> = { writeElements: false, testRun: false, replay: false, check: false, openapi: false };
  let paths = new Map<string, Record<string, unknown>>();
  try {
    const doc = await get<{ paths?: Record<string, Record<string, unknown>> }>("/api/openapi.json");
    if (doc && doc.paths) {
      out.openapi = true;
      paths = new Map(Object.entries(doc.paths).map(([p, ops]) => [normalise(p), ops]));
    }
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
  }
  await Promise.all(
    Object.entries(featureRoutes).map(async ([f, r]) => {
      // The document settles it when it names the route; a route it describes generically
      // (such as /api/nodes/{nodeId}/{op}) is probed.
      const ops = paths.get(r.path);
      if (ops && Object.keys(ops).some((m) => m.toLowerCase() === r.method)) {
        out[f as Feature] = true;
        return;
      }
      try {
        await api(r.method.toUpperCase(), r.probe, "probe");
        out[f as Feature] = true;
      } catch (e) {
        out[f as Feature] = !(e instanceof ApiError && (e.missingRoute || e.status === 405 || e.status === 501));
      }
    }),
  );
  return out;
}

export function features(): Promise<Record<Feature, boolean>> {
  if (!detected) detected = detect().catch((e) => {
    detected = null;
    throw e;
  });
  return detected;
}

export function resetFeatures(): void {
  detected = null;
}
