// Which of the newer routes this host answers. Nothing is faked: a route the host does not have
// yet is shown disabled with the reason.
//
// The host's OpenAPI document (GET /api/openapi.json) says it when there is one. Without it, each
// route is probed with an invalid fullName or id ("probe..x"), which a route that exists rejects
// (400/404 about the name) before doing anything, and which a route that does not exist answers
// with the "no API route" 404.

import { ApiError, api, get } from "./api";

export type Feature = "writeElements" | "testRun" | "replay" | "openapi";

export const featureRoutes: Record<Exclude<Feature, "openapi">, { method: string; path: string; probe: string }> = {
  writeElements: { method: "put", path: "/api/elements/{}", probe: "/api/elements/probe..x" },
  testRun: { method: "post", path: "/api/elements/{}/run", probe: "/api/elements/probe..x/run" },
  replay: { method: "post", path: "/api/nodes/{}/replay", probe: "/api/nodes/probe..x/replay" },
};

let detected: Promise<Record<Feature, boolean>> | null = null;

function normalise(p: string): string {
  return p.replace(/\{[^}]*\}/g, "{}").replace(/:[A-Za-z_]+/g, "{}");
}

async function detect(): Promise<Record<Feature, boolean>> {
  const out: Record<Feature, boolean> = { writeElements: false, testRun: false, replay: false, openapi: false };
  try {
    const doc = await get<{ paths?: Record<string, Record<string, unknown>> }>("/api/openapi.json");
    if (doc && doc.paths) {
      out.openapi = true;
      const paths = new Map(Object.entries(doc.paths).map(([p, ops]) => [normalise(p), ops]));
      for (const [f, r] of Object.entries(featureRoutes)) {
        const ops = paths.get(r.path);
        out[f as Feature] = !!ops && Object.keys(ops).some((m) => m.toLowerCase() === r.method);
      }
      return out;
    }
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
  }
  await Promise.all(
    Object.entries(featureRoutes).map(async ([f, r]) => {
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
