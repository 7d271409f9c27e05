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

// Times typed into a form are in the viewer's zone: tell the server how far it lies
// behind UTC (as `Date.getTimezoneOffset` counts), so that it reads them as meant.
document.querySelectorAll("input.zone-offset").forEach((input) => {
  input.value = String(new Date().getTimezoneOffset());
});

// Picking a condition's plugin brings back the form with that plugin's fields (the
// button does the same without the script).
document.querySelectorAll("select.plugin-pick").forEach((select) => {
  select.addEventListener("change", () => {
    const refresh = select.form.querySelector("button.refresh");
    if (refresh) refresh.click();
  });
});
