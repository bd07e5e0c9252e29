/* Keyboard for every role="tablist": arrow keys (and Home/End) move to the next tab and
   select it, as the ARIA tabs pattern asks; only the selected tab is in the Tab order. */
"use strict";
(function () {
  function sync(list) {
    for (const tab of list.querySelectorAll('[role="tab"]')) {
      tab.tabIndex = tab.getAttribute("aria-selected") === "true" ? 0 : -1;
    }
  }
  document.addEventListener("DOMContentLoaded", () => {
    for (const list of document.querySelectorAll('[role="tablist"]')) {
      sync(list);
      // The page's own script selects tabs; follow it whatever it does.
      new MutationObserver(() => sync(list)).observe(list, { subtree: true, attributeFilter: ["aria-selected"] });
      list.addEventListener("keydown", (event) => {
        const tabs = [...list.querySelectorAll('[role="tab"]:not([disabled])')];
        const at = tabs.indexOf(event.target);
        if (at < 0) return;
        const next = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1,
                       Home: 0, End: tabs.length - 1 }[event.key];
        if (next === undefined) return;
        event.preventDefault();
        const tab = tabs[(next + tabs.length) % tabs.length];
        tab.focus();
        tab.click();
      });
    }
  });
})();
