// Zoe's web interface: small helps on top of pages that work without JavaScript.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Ask before destructive actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  // New execution: fill the description box from a file or from the catalogue.
  var box = document.getElementById("description");
  var name = document.getElementById("name");
  document.querySelectorAll(".js-only").forEach(function (el) {
    el.hidden = false;
  });
  var file = document.getElementById("description-file");
  if (file && box) {
    file.addEventListener("change", function () {
      var f = file.files && file.files[0];
      if (!f) {
        return;
      }
      var reader = new FileReader();
      reader.onload = function () {
        box.value = String(reader.result);
        var app = document.getElementById("app");
        if (app) {
          app.value = "";
        }
      };
      reader.readAsText(f);
    });
  }
  var app = document.getElementById("app");
  if (app && box) {
    app.addEventListener("change", function () {
      var option = app.options[app.selectedIndex];
      var json = option && option.getAttribute("data-json");
      if (json) {
        box.value = json;
        if (name && !name.value) {
          name.value = option.getAttribute("data-name") || "";
        }
      }
    });
  }

  // Logs: show the newest lines.
  var log = document.getElementById("log");
  if (log) {
    log.scrollTop = log.scrollHeight;
  }
});
