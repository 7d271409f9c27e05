// Times arrive in UTC (RFC 3339 in `datetime`); show each in the viewer's own zone.
document.querySelectorAll("time[datetime]").forEach((element) => {
  const at = new Date(element.getAttribute("datetime"));
  if (!Number.isNaN(at.getTime())) {
    element.textContent = at.toLocaleString(undefined, {
      dateStyle: "medium",
      timeStyle: "short",
    });
    element.title = element.getAttribute("datetime");
  }
});
