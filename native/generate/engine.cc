#include "generate/engine.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "generate/causal_decoder.h"
#include "generate/t5_decoder.h"

namespace mentor_kd::generate {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void check_options(const EngineOptions& options) {
  if (options.slots < 1 || options.slots > 4096)
    throw std::invalid_argument("slots must be in [1, 4096], got " + std::to_string(options.slots));
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16)
    throw std::invalid_argument("the generation engine's dtype must be float32 or bfloat16");
}

// The options checked first, then the backend made under InferenceMode, as every step runs.
template <class Backend, class Model>
std::unique_ptr<DecoderBackend> make_backend(std::shared_ptr<Model> model, const EngineOptions& options) {
  check_options(options);
  c10::InferenceMode inference;
  return std::make_unique<Backend>(std::move(model), options.slots, options.dtype);
}

}  // namespace

GenerationEngine::GenerationEngine(std::shared_ptr<t5::T5Model> model, const EngineOptions& options)
    : GenerationEngine(make_backend<T5Decoder>(std::move(model), options), options.slots) {}

GenerationEngine::GenerationEngine(std::shared_ptr<causal::CausalLM> model, const EngineOptions& options)
    : GenerationEngine(make_backend<CausalDecoder>(std::move(model), options), options.slots) {}

GenerationEngine::GenerationEngine(std::unique_ptr<DecoderBackend> backend, int64_t slots)
    : backend_(std::move(backend)), slots_(slots), eos_(backend_->eos_token_ids()) {
  rows_.reserve(slots_);
}

void GenerationEngine::submit(std::vector<GenerationRequest> requests, const std::string& where) {
  for (size_t i = 0; i < requests.size(); ++i)
    validate_request(requests[i], backend_->vocab_size(), where + "[" + std::to_string(i) + "]");
  std::lock_guard<std::mutex> lock(queue_mutex_);
  for (auto& r : requests) incoming_.push_back(std::move(r));
}

bool GenerationEngine::idle() {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  return incoming_.empty() && queue_.empty() && rows_.empty();
}

bool GenerationEngine::is_eos(int64_t id) const { return std::find(eos_.begin(), eos_.end(), id) != eos_.end(); }

void GenerationEngine::take_incoming_locked() {
  for (auto& r : incoming_) {
    auto p = std::make_shared<Pending>();
    p->request = std::move(r);
    p->result.tag = p->request.tag;
    p->result.sequences.resize(p->request.samples);
    queue_.push_back(std::move(p));
  }
  incoming_.clear();
}

bool GenerationEngine::next_row(Row& row) {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    take_incoming_locked();
  }
  if (queue_.empty()) return false;
  std::shared_ptr<Pending> p = queue_.front();
  if (!p->prepared) {
    const auto t0 = std::chrono::steady_clock::now();
    p->prepared = backend_->prepare(p->request);
    stats_.encoder_passes++;
    stats_.encode_seconds += seconds_since(t0);
  }
  row = Row();
  row.req = p;
  row.sample = p->next_sample++;
  row.last = backend_->start_token();
  row.tokens.reserve(std::min<int64_t>(p->request.max_new_tokens, 512));
  if (p->next_sample == p->request.samples) queue_.pop_front();
  return true;
}

void GenerationEngine::admit() {
  while (static_cast<int64_t>(rows_.size()) < slots_) {
    Row r;
    if (!next_row(r)) break;
    rows_.push_back(std::move(r));
  }
}

DecodeRow GenerationEngine::decode_row(const Row& r) const {
  const auto& req = r.req->request;
  DecodeRow d;
  d.prepared = r.req->prepared.get();
  d.token = r.last;
  d.step = r.step;
  d.max_new_tokens = req.max_new_tokens;
  d.fresh = r.fresh;
  d.sampling.do_sample = req.do_sample;
  d.sampling.temperature = req.temperature;
  d.sampling.top_k = req.top_k;
  d.sampling.top_p = req.top_p;
  d.sampling.seed = req.seed;
  d.sampling.sample = static_cast<uint64_t>(r.sample);
  d.sampling.step = static_cast<uint64_t>(r.step);
  return d;
}

void GenerationEngine::move_row(int64_t from, int64_t to) {
  backend_->move_slot(from, to, decode_row(rows_[from]));
  rows_[to] = std::move(rows_[from]);
}

void GenerationEngine::step(std::vector<GenerationResult>& finished) {
  const auto t0 = std::chrono::steady_clock::now();
  const double encode_before = stats_.encode_seconds;
  const int64_t n = static_cast<int64_t>(rows_.size());
  std::vector<DecodeRow> rows(n);
  for (int64_t i = 0; i < n; ++i) rows[i] = decode_row(rows_[i]);
  std::vector<int64_t> next(n);
  backend_->next_tokens(rows, next.data());
  stats_.steps++;
  stats_.row_steps += n;
  finish_rows(next, finished);
  stats_.decode_seconds += seconds_since(t0) - (stats_.encode_seconds - encode_before);
}

void GenerationEngine::finish_rows(const std::vector<int64_t>& next, std::vector<GenerationResult>& finished) {
  const int64_t n = static_cast<int64_t>(rows_.size());
  std::vector<int64_t> holes;
  for (int64_t i = 0; i < n; ++i) {
    Row& r = rows_[i];
    r.tokens.push_back(next[i]);
    r.last = next[i];
    r.step++;
    r.fresh = false;
    stats_.new_tokens++;
    const auto& req = r.req->request;
    const int64_t limit = req.sample_max_new_tokens.empty() ? req.max_new_tokens : req.sample_max_new_tokens[r.sample];
    if (!is_eos(next[i]) && static_cast<int64_t>(r.tokens.size()) < limit) continue;
    Pending& p = *r.req;
    std::vector<int64_t> seq = backend_->sequence_prefix();
    seq.insert(seq.end(), r.tokens.begin(), r.tokens.end());
    p.result.new_tokens += static_cast<int64_t>(r.tokens.size());
    p.result.sequences[r.sample] = std::move(seq);
    if (++p.samples_done == p.request.samples) {
      finished.push_back(std::move(p.result));
      stats_.requests_done++;
    }
    r.req.reset();
    holes.push_back(i);
  }
  // Refill each finished row's slot at once with the next pending (request, sample); then close the
  // remaining holes by moving the last active rows down, so the active rows stay slots 0..n-1.
  std::vector<int64_t> open;
  for (int64_t hole : holes) {
    Row fresh;
    if (next_row(fresh))
      rows_[hole] = std::move(fresh);
    else
      open.push_back(hole);
  }
  // Close holes lowest first with the highest active row.
  std::sort(open.begin(), open.end());
  std::vector<bool> is_open(rows_.size(), false);
  for (int64_t o : open) is_open[o] = true;
  for (int64_t o : open) {
    while (!rows_.empty() && is_open[rows_.size() - 1]) {
      is_open.pop_back();
      rows_.pop_back();
    }
    if (o >= static_cast<int64_t>(rows_.size())) break;
    const int64_t last = static_cast<int64_t>(rows_.size()) - 1;
    move_row(last, o);
    is_open[o] = false;
    rows_.pop_back();
    is_open.pop_back();
  }
  while (!rows_.empty() && !rows_.back().req) rows_.pop_back();
}

std::vector<GenerationResult> GenerationEngine::run_until_finished() {
  c10::InferenceMode inference;
  std::vector<GenerationResult> finished;
  while (finished.empty()) {
    admit();
    if (rows_.empty()) break;
    step(finished);
  }
  return finished;
}

std::vector<GenerationResult> GenerationEngine::run_all() {
  std::vector<GenerationResult> all;
  for (;;) {
    auto part = run_until_finished();
    if (part.empty()) break;
    for (auto& r : part) all.push_back(std::move(r));
  }
  return all;
}

}  // namespace mentor_kd::generate
