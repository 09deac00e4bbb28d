// "Places near me" on the catalogue page: the browser's position (asked only when the button is pressed)
// goes into the search form as lat/lon, and the form is sent as if submitted. Without JavaScript, or when
// the position is refused, the district list does the same job; nothing is sent anywhere else.
(function () {
  "use strict";
  var form = document.getElementById("catalogue-search");
  var button = document.getElementById("near-me");
  var status = document.getElementById("near-me-status");
  if (!form || !button || !("geolocation" in navigator)) {
    return;
  }
  button.hidden = false;
  function field(name, value) {
    var input = form.querySelector('input[name="' + name + '"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    input.value = value;
  }
  button.addEventListener("click", function () {
    button.disabled = true;
    navigator.geolocation.getCurrentPosition(
      function (position) {
        field("lat", position.coords.latitude.toFixed(4));
        field("lon", position.coords.longitude.toFixed(4));
        form.querySelector('select[name="near"]').value = "";
        form.submit();
      },
      function () {
        button.disabled = false;
        status.textContent = button.getAttribute("data-failed");
      },
      { timeout: 15000, maximumAge: 300000 }
    );
  });
})();
