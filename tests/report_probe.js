// Appended to a copy of report.html by tests/test_report.py and run by headless Chromium: it
// clicks through the Snakemake report as a person would (category, subcategory, then each
// result's "eye" and "info" buttons, and a caption's link to another result) and writes what
// the page showed, as JSON, into the element #glueperf-probe for the test to read from the
// dumped DOM. `categories` and `results`
// are the report's own data (globals of its script elements).
"use strict";

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function appLinks() {
  return Array.from(document.querySelectorAll("#app a"));
}

async function clickText(text) {
  const link = appLinks().find((a) => a.textContent.trim() === text);
  if (!link) return false;
  link.click();
  await pause(200);
  return true;
}

async function home() {
  // The first link of the breadcrumbs (the house icon) leads back to the menu.
  const link = document.querySelector("#app nav ol li a");
  if (link) link.click();
  await pause(200);
}

function toggled(value) {
  // A label whose two values the report shows as a toggle (e.g. "view": a table or the CSV
  // file) rather than as a column: its radio button.
  return document.querySelector(`#app input[type="radio"][value="${CSS.escape(value)}"]`);
}

async function resultRow(result) {
  // Turn each toggle to the result's value, then find the row whose cells show its other
  // labels, in order.
  const labels = Object.values(result.labels || {}).map(String);
  for (const label of labels) {
    const radio = toggled(label);
    if (radio && !radio.checked) {
      radio.click();
      await pause(200);
    }
  }
  const wanted = labels.filter((label) => !toggled(label));
  return Array.from(document.querySelectorAll("#app tr")).find((row) => {
    const cells = Array.from(row.cells).map((cell) => cell.textContent.trim());
    return wanted.every((label, i) => cells[i] === label);
  });
}

async function visit(category, subcategory, path) {
  const seen = { path, category, subcategory, row: false };
  await home();
  seen.category_clicked = await clickText(category);
  if (subcategory !== "Other") seen.subcategory_clicked = await clickText(subcategory);
  const row = await resultRow(results[path]);
  if (!row) return seen;
  seen.row = true;
  const eye = row.querySelector('a[iconname="eye"]');
  const info = row.querySelector('a[iconname="information-circle"]');
  if (eye && eye.getAttribute("download")) {
    // Not an image: the button downloads the embedded file.
    seen.download = { name: eye.getAttribute("download"), href: eye.getAttribute("href") };
  } else if (eye) {
    eye.click();
    await pause(300);
    const images = Array.from(document.querySelectorAll("#app img")).filter((image) =>
      image.src.startsWith("data:image/png"),
    );
    seen.images = images.map((image) => ({
      src: image.src,
      width: image.naturalWidth,
      height: image.naturalHeight,
      shown_width: image.getBoundingClientRect().width,
    }));
    // An HTML result (a table) is shown in a frame of the page.
    seen.frames = Array.from(document.querySelectorAll("#app iframe")).map((frame) => ({
      src: frame.src,
      shown_width: frame.getBoundingClientRect().width,
      shown_height: frame.getBoundingClientRect().height,
    }));
  }
  if (info) {
    info.click();
    await pause(300);
    seen.info_text = document.querySelector("#app nav").innerText;
    // A caption's link to another result (`name`_ in its .rst): follow it, as a reader would.
    const link = document.querySelector('#app nav a[href^="javascript:app.showResultInfo"]');
    if (link) {
      seen.caption_link = link.textContent.trim();
      link.click();
      await pause(300);
      seen.linked_info_text = document.querySelector("#app nav").innerText;
    }
  }
  return seen;
}

async function probe() {
  const report = {
    menu: appLinks().map((a) => a.textContent.trim()).filter(Boolean),
    description: (document.querySelector("#app .prose") || { innerText: "" }).innerText,
    visits: [],
  };
  for (const [category, subcategories] of Object.entries(categories)) {
    for (const [subcategory, paths] of Object.entries(subcategories)) {
      for (const path of paths) report.visits.push(await visit(category, subcategory, path));
    }
  }
  return report;
}

window.addEventListener("load", async () => {
  await pause(300); // let React draw the first page
  let report;
  try {
    report = await probe();
  } catch (error) {
    report = { error: String(error && error.stack ? error.stack : error) };
  }
  const pre = document.createElement("pre");
  pre.id = "glueperf-probe";
  pre.textContent = JSON.stringify(report);
  document.body.appendChild(pre);
});
