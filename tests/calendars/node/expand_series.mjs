// Reads an iCalendar feed on stdin with Mozilla's ical.js as Thunderbird does: RECURRENCE-ID
// events are related to their series (relateException) and every occurrence is expanded,
// EXDATE and RDATE honoured. Prints {"events": [{uid, start, end, summary}]} (UTC instants)
// for occurrences starting before argv[2]. Used by tests/calendars and tests/app series tests.
import ICAL from "ical.js";

const until = ICAL.Time.fromJSDate(new Date(process.argv[2] ?? "2100-01-01T00:00:00Z"), true);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const calendar = new ICAL.Component(ICAL.parse(Buffer.concat(chunks).toString("utf8")));
for (const vtimezone of calendar.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(vtimezone);
}
const masters = new Map();
const exceptions = [];
for (const vevent of calendar.getAllSubcomponents("vevent")) {
  if (vevent.hasProperty("recurrence-id")) exceptions.push(vevent);
  else masters.set(vevent.getFirstPropertyValue("uid"), new ICAL.Event(vevent));
}
for (const vevent of exceptions) {
  const master = masters.get(vevent.getFirstPropertyValue("uid"));
  if (master) master.relateException(vevent);
}
const iso = (t) => t.toJSDate().toISOString();
const out = [];
for (const [uid, event] of masters) {
  if (!event.isRecurring()) {
    out.push({ uid, summary: event.summary, start: iso(event.startDate), end: iso(event.endDate) });
    continue;
  }
  const it = event.iterator();
  for (let next = it.next(); next && next.compare(until) < 0; next = it.next()) {
    const d = event.getOccurrenceDetails(next);
    out.push({ uid, summary: d.item.summary, start: iso(d.startDate), end: iso(d.endDate) });
  }
}
process.stdout.write(JSON.stringify({ events: out }));
