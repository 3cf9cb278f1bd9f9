// The service-point desk's accept form: each field is checked as it is typed (on input, a
// moment after the last key, and on blur) by POSTing the form's fields to /desk/check, which
// runs the rules of `registry import`; the message for each field the clerk has touched is
// shown beside it. A photo chosen is shown at once and sent to /desk/photo-check, which keeps
// it and names the rule of the card photo specification it fails. No build step, no library.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("accept-form");
  if (!form) return;
  const touched = new Set();
  const csrf = form.querySelector("input[name=csrf]").value;
  const inputs = [...form.querySelectorAll("[data-check]")];
  let timer = 0;
  let asked = 0;

  const show = (name, text) => {
    const span = document.getElementById("problem-" + name);
    const box = document.getElementById("field-" + name);
    if (!span || !box) return;
    span.textContent = text || "";
    box.classList.toggle("bad", !!text);
    const input = document.getElementById(name);
    if (input) input.setAttribute("aria-invalid", text ? "true" : "false");
  };

  const check = async () => {
    const body = new URLSearchParams();
    body.set("csrf", csrf);
    for (const el of inputs) body.set(el.name, el.value);
    const mine = ++asked;
    try {
      const r = await fetch(form.dataset.check, { method: "POST", body, credentials: "same-origin" });
      if (r.status === 401) { window.location.assign("/login"); return; }
      if (r.status !== 200 || mine !== asked) return; // a newer answer is on its way
      const problems = (await r.json()).problems || {};
      for (const el of inputs) if (touched.has(el.name)) show(el.name, problems[el.name]);
      form.dataset.checked = String(Number(form.dataset.checked || 0) + 1);
    } catch (e) {
      // the server is restarting: the next key checks again
    }
  };

  for (const el of inputs) {
    if (el.value) touched.add(el.name); // a form sent back with values
    const soon = () => { touched.add(el.name); window.clearTimeout(timer); timer = window.setTimeout(check, 250); };
    el.addEventListener("input", soon);
    el.addEventListener("change", soon);
    el.addEventListener("blur", () => { touched.add(el.name); check(); });
  }

  // the ethnic group's GB/T 3304 name beside its code, from the form's own list
  const nation = document.getElementById("nation");
  const nationName = document.getElementById("nation-name");
  if (nation && nationName) {
    nation.addEventListener("input", () => {
      const option = document.querySelector(`#nation-list option[value="${CSS.escape(nation.value)}"]`);
      nationName.textContent = option ? option.label.slice(3) : "";
    });
  }

  const file = document.getElementById("photo");
  const preview = document.getElementById("photo-preview");
  const ok = document.getElementById("photo-ok");
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    const reader = new FileReader();
    reader.onload = () => { preview.src = String(reader.result); preview.hidden = false; };
    reader.readAsDataURL(chosen);
    const body = new FormData();
    body.set("csrf", csrf);
    body.set("photo", chosen);
    try {
      const r = await fetch(form.dataset.photoCheck, { method: "POST", body, credentials: "same-origin" });
      if (r.status === 413) { show("photo", "文件太大 the file is too large"); ok.hidden = true; return; }
      if (r.status !== 200) return;
      const got = await r.json();
      document.getElementById("photo_ref").value = got.ref;
      show("photo", got.problem);
      ok.hidden = !!got.problem;
      form.dataset.photoChecked = String(Number(form.dataset.photoChecked || 0) + 1);
    } catch (e) {
      // checked again when the form is sent
    }
  });
});
