// Reads an iCalendar feed on stdin with Mozilla's ical.js (Thunderbird's parser) and prints
// every event occurrence that starts before argv[2] (ISO instant) as JSON lines of UTC
// instants: {"uid", "start", "end", "status", "summary"}. Used by tests/calendars.
import ICAL from "ical.js";

const until = ICAL.Time.fromJSDate(new Date(process.argv[2] ?? "2100-01-01T00:00:00Z"), true);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString("utf8");

const calendar = new ICAL.Component(ICAL.parse(text));
for (const vtimezone of calendar.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(vtimezone);
}
const out = [];
for (const vevent of calendar.getAllSubcomponents("vevent")) {
  const event = new ICAL.Event(vevent);
  const base = {
    uid: event.uid,
    status: vevent.getFirstPropertyValue("status"),
    summary: event.summary,
  };
  if (!event.isRecurring()) {
    out.push({ ...base, start: event.startDate.toJSDate().toISOString(), end: event.endDate.toJSDate().toISOString() });
    continue;
  }
  const it = event.iterator();
  for (let next = it.next(); next && next.compare(until) < 0; next = it.next()) {
    const details = event.getOccurrenceDetails(next);
    out.push({
      ...base,
      start: details.startDate.toJSDate().toISOString(),
      end: details.endDate.toJSDate().toISOString(),
    });
  }
}
process.stdout.write(JSON.stringify({ tzids: calendar.getAllSubcomponents("vtimezone").map((z) => z.getFirstPropertyValue("tzid")), events: out }));
