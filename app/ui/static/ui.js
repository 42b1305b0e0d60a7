// copool dashboard: the little script it needs (no inline script anywhere; CSP script-src 'self').
// 1. Elements with data-poll="URL" are replaced by the HTML fragment at URL every 2 s
//    until the fragment no longer carries data-poll; one that carries data-reload (an
//    allocation run that finished) reloads the page, which then shows the plan.
// 2. Buttons with data-copy="ID" copy the value of the input ID to the clipboard.
"use strict";

function pollFragment(el) {
  const url = el.getAttribute("data-poll");
  window.setTimeout(async () => {
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!answer.ok) { return; }
      const holder = document.createElement("div");
      holder.innerHTML = await answer.text();
      const fresh = holder.firstElementChild;
      if (!fresh) { return; }
      if (fresh.hasAttribute("data-reload")) { window.location.reload(); return; }
      el.replaceWith(fresh);
      if (fresh.hasAttribute("data-poll")) { pollFragment(fresh); }
    } catch (err) {
      pollFragment(el); // a network hiccup: try again in 2 s
    }
  }, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach(pollFragment);
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.getAttribute("data-copy"));
      if (field && navigator.clipboard) {
        await navigator.clipboard.writeText(field.value);
        button.textContent = "Copied";
      }
    });
  });
});
