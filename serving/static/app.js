// The page's only logic: call the JSON API and show what it answers.
"use strict";

const $ = (id) => document.getElementById(id);

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({ message: response.statusText }));
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  return body;
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function fmt(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(3);
}

// MovieLens titles usually end with the year already: "Toy Story (1995)"
function titleWithYear(item) {
  const title = item.title ?? `movie ${item.movie_id}`;
  return item.year && !title.endsWith(`(${item.year})`) ? `${title} (${item.year})` : title;
}

function genresCell(genres) {
  const td = document.createElement("td");
  for (const name of genres || []) {
    const span = document.createElement("span");
    span.className = "genre";
    span.textContent = name;
    td.appendChild(span);
  }
  return td;
}

// score, cf_score and cb_score are chances, 0..1, one scale in every list whatever its source, so
// their bars compare; anything else (a cold start's null score, a value off that scale) gets no bar.
function isChance(value) {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= 1;
}

function scoreCell(value, kind) {
  const td = cell(fmt(value), "num");
  if (isChance(value)) {
    const bar = document.createElement("span");
    bar.className = "bar " + kind;
    bar.style.width = `${value * 3}rem`;
    td.appendChild(bar);
  }
  return td;
}

// a cold start's order: the movie's rating count, a number of its own (no bar: it is not a score)
function popularityCell(value) {
  return cell(value === null || value === undefined ? "–" : String(value), "num popularity");
}

async function showRecommendations(event) {
  if (event) event.preventDefault();
  const user = $("user-id").value.trim();
  const params = new URLSearchParams({ k: $("k").value || "10" });
  const genre = $("genre").value.trim();
  if (genre) params.set("genre", genre);
  const status = $("status");
  status.className = "";
  status.textContent = "Loading…";
  const table = $("recs");
  const tbody = table.querySelector("tbody");
  tbody.replaceChildren();
  try {
    const answer = await getJSON(`/users/${encodeURIComponent(user)}/recommendations?${params}`);
    const labels = { precomputed: "precomputed by the nightly run", live: "scored live from the run's models",
                     cold_start: "a new user: the most popular movies" };
    status.textContent = `User ${answer.user_id}: ${answer.items.length} movies, ${labels[answer.source] || answer.source} (run ${answer.run_id}).`;
    table.classList.toggle("cold-start", answer.source === "cold_start");
    for (const item of answer.items) {
      const row = document.createElement("tr");
      row.dataset.movieId = item.movie_id;
      row.append(cell(item.rank, "num"), cell(item.title ?? `movie ${item.movie_id}`), cell(item.year ?? ""),
                 genresCell(item.genres), scoreCell(item.score, "score"), scoreCell(item.cf_score, "cf"),
                 scoreCell(item.cb_score, "cb"), popularityCell(item.popularity));
      const td = document.createElement("td");
      const button = document.createElement("button");
      button.className = "link similar";
      button.type = "button";
      button.textContent = "similar";
      button.addEventListener("click", () => { $("movie-id").value = item.movie_id; showSimilar(); });
      td.appendChild(button);
      row.append(td, rateCell(answer.user_id, item));
      tbody.appendChild(row);
    }
    table.hidden = false;
  } catch (err) {
    table.hidden = true;
    status.className = "error";
    status.textContent = err.message;
  }
}

// Rating a movie needs an API key (POST /users/<id>/ratings is keyed).  The key is read from
// its box when a rating is sent, and lives nowhere else: not in the page's HTML, not in storage.
function rateCell(userId, item) {
  const td = document.createElement("td");
  const stars = document.createElement("select");
  stars.className = "stars";
  stars.setAttribute("aria-label", `rating of ${item.title ?? "movie " + item.movie_id}`);
  for (let half = 10; half >= 1; half -= 1) {
    const option = document.createElement("option");
    option.value = String(half / 2);
    option.textContent = (half / 2).toFixed(1);
    stars.appendChild(option);
  }
  stars.value = "4";
  const button = document.createElement("button");
  button.className = "link rate";
  button.type = "button";
  button.textContent = "rate";
  button.addEventListener("click", () => rate(userId, item, Number(stars.value)));
  td.append(stars, button);
  return td;
}

async function rate(userId, item, rating) {
  const status = $("status");
  const key = $("api-key").value.trim();
  if (!key) {
    status.className = "error";
    status.textContent = "Rating needs an API key: type it in the API key box.";
    return;
  }
  try {
    const response = await fetch(`/users/${encodeURIComponent(userId)}/ratings`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${key}` },
      body: JSON.stringify([{ movie_id: item.movie_id, rating }]),
    });
    const body = await response.json().catch(() => ({ message: response.statusText }));
    if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
    await showRecommendations();
    status.textContent = `Rated ${item.title ?? "movie " + item.movie_id} ${rating.toFixed(1)}. ` + status.textContent;
  } catch (err) {
    status.className = "error";
    status.textContent = `Could not rate: ${err.message}`;
  }
}

async function showSimilar(event) {
  if (event) event.preventDefault();
  const movie = $("movie-id").value.trim();
  const status = $("similar-status");
  const list = $("similar");
  list.replaceChildren();
  status.className = "";
  status.textContent = "Loading…";
  try {
    const answer = await getJSON(`/movies/${encodeURIComponent(movie)}/similar?k=10`);
    status.textContent = `Like ${answer.title ?? "movie " + answer.movie_id}:`;
    for (const item of answer.items) {
      const li = document.createElement("li");
      li.dataset.movieId = item.movie_id;
      li.textContent = `${titleWithYear(item)} — ${fmt(item.score)}`;
      list.appendChild(li);
    }
    if (!answer.items.length) status.textContent += " no similar movies in this run.";
  } catch (err) {
    status.className = "error";
    status.textContent = err.message;
  }
}

async function showRun() {
  try {
    const run = await getJSON("/runs/active");
    $("run-id").textContent = run.run_id;
  } catch (err) {
    $("run-id").textContent = `none (${err.message})`;
  }
}

$("user-form").addEventListener("submit", showRecommendations);
$("movie-form").addEventListener("submit", showSimilar);
showRun();
