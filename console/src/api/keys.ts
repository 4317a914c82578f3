// The roots of every feature's query keys: the live stream invalidates by root without importing a feature.
export const roots = {
  session: "session",
  signin: "signin",
  incidents: "incidents",
  incident: "incident",
  approvals: "approvals",
  overview: "overview",
} as const;
