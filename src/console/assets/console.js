// gerbang console: conveniences only. Every page works without this script.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // "Select all" checkboxes: <input type="checkbox" data-select-all="name"> ticks every
  // checkbox named `name` in its form.
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    var name = all.getAttribute("data-select-all");
    all.addEventListener("change", function () {
      var form = all.form || document;
      form.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });

  // Buttons that ask before they act: <button data-confirm="Are you sure?">.
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });
});
