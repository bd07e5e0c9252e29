/* The Download menus (templates/_download_menu.html). Without scripts a link opens a page
   that reloads itself until the file is built; with them the menu asks the status API,
   says "preparing…" while it waits, then starts the download, and stays open when the
   admin page refreshes its tables. */
"use strict";
(function () {
  let openMenu = null;              // data-download-menu of the menu the visitor opened
  const wait = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

  document.addEventListener("toggle", (event) => {
    const menu = event.target;
    if (!menu.matches || !menu.matches("details.download-menu")) return;
    if (menu.open) {
      openMenu = menu.dataset.downloadMenu;
      document.querySelectorAll("details.download-menu[open]").forEach((other) => {
        if (other !== menu) other.open = false;
      });
    } else if (openMenu === menu.dataset.downloadMenu) {
      openMenu = null;
    }
  }, true);

  document.addEventListener("click", (event) => {
    if (!event.target.closest("details.download-menu")) {
      document.querySelectorAll("details.download-menu[open]").forEach((menu) => { menu.open = false; });
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      document.querySelectorAll("details.download-menu[open]").forEach((menu) => { menu.open = false; });
    }
  });

  // The admin page replaces its tables every few seconds: reopen the menu that was open.
  new MutationObserver(() => {
    if (openMenu === null) return;
    const menu = document.querySelector(`details.download-menu[data-download-menu="${openMenu}"]`);
    if (menu && !menu.open) menu.open = true;
  }).observe(document.body, { childList: true, subtree: true });

  const note = (link, text, kind) => {
    const box = link.closest("details.download-menu");
    const p = box && box.querySelector(".download-note");
    if (!p) return;
    p.textContent = text;
    if (kind) p.dataset.kind = kind; else delete p.dataset.kind;
  };

  document.addEventListener("click", async (event) => {
    const link = event.target.closest("a[data-status-url]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    if (link.getAttribute("aria-busy") === "true") return;
    link.setAttribute("aria-busy", "true");
    note(link, "");
    try {
      for (let round = 0; ; round++) {
        const status = await window.Hark.fetchJSON(link.dataset.statusUrl,
                                                    { cache: "no-store", credentials: "same-origin" });
        if (status.state === "ready") {
          window.location.href = status.url;     // an attachment: the page stays
          break;
        }
        if (round === 0) note(link, `Building ${status.file_name} (once per version; it can take a minute)…`);
        await wait(1500);
      }
      note(link, "");
    } catch (err) {
      note(link, err.message, "error");
    } finally {
      link.removeAttribute("aria-busy");
    }
  });
})();
