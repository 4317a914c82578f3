// Dates in the reader's language and time zone.
export function formatTime(iso: string | null | undefined, lng: string): string {
  if (!iso) return "";
  return new Intl.DateTimeFormat(lng, { dateStyle: "medium", timeStyle: "medium" }).format(new Date(iso));
}
