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

  // A file chosen in <input type="file" data-fill="id"> is read into the text box #id (the
  // playground). Without this script the box is pasted into instead.
  document.querySelectorAll("input[type=file][data-fill]").forEach(function (input) {
    input.addEventListener("change", function () {
      var box = document.getElementById(input.getAttribute("data-fill"));
      var file = input.files && input.files[0];
      if (!box || !file) {
        return;
      }
      var max = parseInt(input.getAttribute("data-max-bytes") || "0", 10);
      if (max > 0 && file.size > max) {
        window.alert(input.getAttribute("data-too-large"));
        input.value = "";
        return;
      }
      var reader = new FileReader();
      reader.onload = function () {
        box.value = reader.result;
      };
      reader.readAsText(file);
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
