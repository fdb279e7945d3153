#include "parallel/group.h"

#ifdef MENTOR_KD_WITH_C10D

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef MENTOR_KD_WITH_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <unistd.h>

#include <algorithm>

#include "parallel/route.h"
#include "util/exception.h"
#include <cstdlib>
#include <sstream>

namespace mentor_kd::dist {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string string_of(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

std::string join_ranks(const std::vector<int>& ranks) {
  std::ostringstream os;
  os << (ranks.size() == 1 ? "rank " : "ranks ");
  for (size_t i = 0; i < ranks.size(); ++i) os << (i ? ", " : "") << ranks[i];
  return os.str();
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "?";
  return buf;
}

// Process-local count of groups created: every rank creates its groups in the
// same order, so the n-th group of each rank meets under the same prefix.
std::atomic<int> g_generation{0};

}  // namespace

void GroupOptions::validate() const {
  if (world_size < 1) throw std::invalid_argument("WORLD_SIZE must be >= 1, got " + std::to_string(world_size));
  if (rank < 0) throw std::invalid_argument("RANK must be >= 0, got " + std::to_string(rank));
  if (rank >= world_size)
    throw std::invalid_argument("RANK=" + std::to_string(rank) + " is not < WORLD_SIZE=" + std::to_string(world_size));
  if (local_rank < 0) throw std::invalid_argument("LOCAL_RANK must be >= 0, got " + std::to_string(local_rank));
  if (master_addr.empty()) throw std::invalid_argument("MASTER_ADDR is empty");
  if (master_port < 1 || master_port > 65535)
    throw std::invalid_argument("MASTER_PORT must be in 1..65535, got " + std::to_string(master_port));
  if (timeout.count() <= 0)
    throw std::invalid_argument("timeoutMs must be > 0, got " + std::to_string(timeout.count()));
  if (backend != "gloo" && backend != "nccl")
    throw std::invalid_argument("backend must be 'gloo' or 'nccl', got '" + backend + "'");
#ifndef MENTOR_KD_WITH_C10D_NCCL
  if (backend == "nccl")
    throw std::invalid_argument(
        "backend 'nccl' needs a CUDA build of mentor-kd against a libtorch with NCCL; this build has Gloo only");
#endif
}

Group::Group(GroupOptions options) : options_(std::move(options)) {
  // Peers are declared dead after ~2.5 missed beats; keep that well inside the timeout.
  const auto t = options_.timeout.count();
  heartbeat_interval_ = milliseconds(std::clamp<int64_t>(t / 10, 50, 1000));
}

std::shared_ptr<Group> Group::create(const GroupOptions& options) {
  options.validate();
  std::shared_ptr<Group> g(new Group(options));
  g->rendezvous();
  return g;
}

Group::~Group() {
  // No waiting here (this may run on the JS thread at GC): just stop and release.
  try {
    stop_heartbeat();
  } catch (...) {
  }
  pg_.reset();
  store_.reset();
  tcp_store_.reset();
}

std::string Group::key(const std::string& kind, int r) const { return kind + "/" + std::to_string(r); }

at::Device Group::comm_device() const {
  if (options_.backend == "nccl") return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(options_.local_rank));
  return at::Device(at::kCPU);
}

void Group::rendezvous() {
  const auto& o = options_;
  const std::string where = o.master_addr + ":" + std::to_string(o.master_port);
  prefix_ = "mentor-kd/" + std::to_string(g_generation.fetch_add(1)) + "/";
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(o.master_port);
  so.isServer = o.rank == 0;
  so.waitWorkers = false;  // joining is checked below, naming who is missing
  so.timeout = o.timeout;
  try {
    tcp_store_ = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
  } catch (...) {
    const std::string why = current_exception_message();
    if (o.rank == 0)
      throw std::runtime_error("dist: rank 0 could not host the rendezvous store on MASTER_ADDR:MASTER_PORT=" + where +
                               " (is the port in use, or the address not local?): " + why);
    throw std::runtime_error("dist: rank " + std::to_string(o.rank) +
                             " could not reach the rendezvous store at MASTER_ADDR:MASTER_PORT=" + where + " within " +
                             std::to_string(o.timeout.count()) + " ms (is rank 0 running?): " + why);
  }
  store_ = c10::make_intrusive<c10d::PrefixStore>(prefix_, tcp_store_);

  // Join: claim the rank (two processes with the same RANK is a launch error),
  // publish who we are, then wait for everyone.
  const std::string me =
      std::to_string(o.world_size) + " " + o.backend + " " + host_name() + ":" + std::to_string(getpid());
  if (store_->add(key("claim", o.rank), 1) > 1)
    throw std::runtime_error("dist: another process already joined as RANK=" + std::to_string(o.rank) + " at " + where);
  store_->set(key("seq", o.rank), bytes_of("0 rendezvous"));
  store_->add(key("hb", o.rank), 1);
  store_->set(key("join", o.rank), bytes_of(me));
  std::vector<std::string> keys;
  for (int r = 0; r < o.world_size; ++r) keys.push_back(key("join", r));
  const auto deadline = Clock::now() + o.timeout;
  while (!store_->check(keys)) {
    if (Clock::now() >= deadline) {
      std::vector<int> missing;
      for (int r = 0; r < o.world_size; ++r)
        if (!store_->check({key("join", r)})) missing.push_back(r);
      throw std::runtime_error("dist: rendezvous at " + where + " timed out after " +
                               std::to_string(o.timeout.count()) + " ms: " + join_ranks(missing) +
                               " of WORLD_SIZE=" + std::to_string(o.world_size) + " did not join");
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  // Everyone must agree on the world size and backend.
  for (int r = 0; r < o.world_size; ++r) {
    std::istringstream is(string_of(store_->get(key("join", r))));
    int ws = 0;
    std::string backend, who;
    is >> ws >> backend >> who;
    if (ws != o.world_size)
      throw std::runtime_error("dist: rank " + std::to_string(r) + " (" + who +
                               ") has WORLD_SIZE=" + std::to_string(ws) + " but rank " + std::to_string(o.rank) +
                               " has WORLD_SIZE=" + std::to_string(o.world_size));
    if (backend != o.backend)
      throw std::runtime_error("dist: rank " + std::to_string(r) + " (" + who + ") uses backend " + backend +
                               " but rank " + std::to_string(o.rank) + " uses " + o.backend);
  }

  auto pg_store = c10::make_intrusive<c10d::PrefixStore>("pg", store_);
  bool address_guessed = false;  // Gloo's address chosen by us, not by GLOO_SOCKET_IFNAME or loopback
  try {
    if (o.backend == "gloo") {
      auto go = c10d::ProcessGroupGloo::Options::create(o.timeout);
      const std::string& ifname = o.socket_ifname;  // GLOO_SOCKET_IFNAME, read by lib/runtime/env.ts
      if (!ifname.empty()) {
        std::stringstream names(ifname);
        for (std::string n; std::getline(names, n, ',');)
          if (!n.empty()) go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(n));
        transport_ = "gloo on interface " + ifname + " (GLOO_SOCKET_IFNAME)";
      } else if (is_loopback(o.master_addr)) {
        // A single-machine job: keep Gloo's pairs on loopback whatever the hostname resolves to.
        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        transport_ = "gloo on 127.0.0.1 (MASTER_ADDR is loopback)";
      } else {
        // Several hosts: bind where the route to MASTER_ADDR leaves, not where the hostname
        // resolves (often loopback: every rank would advertise 127.x). See parallel/route.h.
        address_guessed = true;
        const RouteResult route = local_address_toward(o.master_addr, o.master_port);
        if (!route.address.empty()) {
          go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(route.address));
          transport_ =
              "gloo on " + route.address + " (the local address that routes to MASTER_ADDR=" + o.master_addr + ")";
        } else {
          go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
          transport_ = "gloo on the hostname's address (" + host_name() + "; no route to MASTER_ADDR=" + o.master_addr +
                       ": " + route.error + ")";
        }
      }
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(pg_store, o.rank, o.world_size, go);
    } else {
#ifdef MENTOR_KD_WITH_C10D_NCCL
      // Without blocking wait, a hung NCCL collective never returns to wait(): make wait honour the timeout.
      setenv("NCCL_BLOCKING_WAIT", "1", 0);
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = o.timeout;
      transport_ = "nccl";
      pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg_store, o.rank, o.world_size, no);
#endif
    }
  } catch (...) {
    const std::string hint =
        address_guessed ? "; set GLOO_SOCKET_IFNAME to the interface the hosts reach each other on if this one is wrong"
                        : "";
    throw std::runtime_error("dist: creating the " + o.backend + " process group (rank " + std::to_string(o.rank) +
                             " of " + std::to_string(o.world_size) + (transport_.empty() ? "" : ", " + transport_) +
                             ") failed: " + current_exception_message() + hint);
  }
  if (o.world_size > 1) start_heartbeat();
}

void Group::start_heartbeat() {
  // Its own store client: a main-thread store call may block (waits), and the
  // beat must keep going meanwhile.
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(options_.master_port);
  so.isServer = false;
  so.waitWorkers = false;
  so.timeout = std::max(options_.timeout, milliseconds(1000));
  c10::intrusive_ptr<c10d::Store> client = c10::make_intrusive<c10d::TCPStore>(options_.master_addr, so);
  c10::intrusive_ptr<c10d::Store> beat_store = c10::make_intrusive<c10d::PrefixStore>(prefix_, client);
  const std::string k = key("hb", options_.rank);
  heartbeat_ = std::thread([this, beat_store, k]() {
    std::unique_lock<std::mutex> lock(heartbeat_mutex_);
    while (!heartbeat_stop_) {
      lock.unlock();
      try {
        beat_store->add(k, 1);
      } catch (...) {
        return;  // the store is gone (rank 0 left): nothing left to tell
      }
      lock.lock();
      heartbeat_cv_.wait_for(lock, heartbeat_interval_, [this] { return heartbeat_stop_; });
    }
  });
}

void Group::stop_heartbeat() {
  {
    std::lock_guard<std::mutex> lock(heartbeat_mutex_);
    heartbeat_stop_ = true;
  }
  heartbeat_cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
}

Group::Turn::Turn(Group& g, uint64_t ticket) : g_(g) {
  std::unique_lock<std::mutex> lock(g_.turn_mutex_);
  g_.turn_cv_.wait(lock, [&] { return g_.serving_ == ticket; });
}

Group::Turn::~Turn() {
  {
    std::lock_guard<std::mutex> lock(g_.turn_mutex_);
    ++g_.serving_;
  }
  g_.turn_cv_.notify_all();
}

void Group::check_usable() const {
  if (destroyed_) throw std::runtime_error("dist: this process group was destroyed");
  if (broken_) throw std::runtime_error(broken_message_ + " (the process group is unusable after this failure)");
}

template <typename Fn>
auto Group::comm(const char* what, Fn&& fn) -> decltype(fn()) {
  check_usable();
  ++run_issued_;
  try {
    return fn();
  } catch (...) {
    throw CommError(std::string(what) + ": " + current_exception_message());
  }
}

void Group::run(const std::string& what, const std::function<void()>& fn) {
  check_usable();
  const uint64_t seq = ++seq_;
  run_issued_ = 0;
  try {
    if (size() > 1) {
      try {
        store_->set(key("seq", rank()), bytes_of(std::to_string(seq) + " " + what));
      } catch (...) {
        throw CommError("publishing progress to the store: " + current_exception_message());
      }
    }
    fn();
  } catch (const CommError& e) {
    broken_message_ = diagnose(seq, what, e.what());
    broken_ = true;
    throw std::runtime_error(broken_message_);
  } catch (...) {
    if (run_issued_ > 0) {
      broken_message_ =
          "dist: rank " + std::to_string(rank()) + " failed inside '" + what + "' (collective #" + std::to_string(seq) +
          ") after it had started communicating, so the ranks are out of step: " + current_exception_message();
      broken_ = true;
    } else {
      --seq_;  // nothing was communicated: the group is still in step
    }
    throw;
  }
}

std::string Group::diagnose(uint64_t seq, const std::string& what, const std::string& cause) {
  std::ostringstream os;
  os << "dist: '" << what << "' (collective #" << seq << ") failed on rank " << rank() << " of " << size() << ": ";
  if (size() == 1) {
    os << cause;
    return os.str();
  }
  std::vector<std::string> findings;
  try {
    const int n = size();
    std::vector<int64_t> beat0(n), beat1(n);
    for (int r = 0; r < n; ++r) beat0[r] = store_->add(key("hb", r), 0);
    // A live rank beats every interval; 2.5 intervals (and at least 1.5 s, so a busy machine
    // does not make a live rank look dead) without a beat means gone or frozen.
    const auto wait = std::max<milliseconds>(heartbeat_interval_ * 5 / 2, milliseconds(1500));
    std::this_thread::sleep_for(wait);
    for (int r = 0; r < n; ++r) beat1[r] = store_->add(key("hb", r), 0);
    std::vector<int> stopped, behind, ahead;
    std::vector<std::string> at(n);
    std::vector<uint64_t> their_seq(n, 0);
    for (int r = 0; r < n; ++r) {
      if (r == rank()) continue;
      if (store_->check({key("seq", r)})) {
        std::string s = string_of(store_->get(key("seq", r)));
        std::istringstream is(s);
        is >> their_seq[r];
        std::string name;
        std::getline(is >> std::ws, name);
        at[r] = "#" + std::to_string(their_seq[r]) + " '" + name + "'";
      }
      if (beat1[r] == beat0[r])
        stopped.push_back(r);
      else if (their_seq[r] < seq)
        behind.push_back(r);
      else if (their_seq[r] > seq)
        ahead.push_back(r);
    }
    for (int r : stopped)
      findings.push_back("rank " + std::to_string(r) + " is dead or frozen (no heartbeat for " +
                         std::to_string(wait.count()) + " ms; it had reached collective " + at[r] + ")");
    for (int r : behind)
      findings.push_back("rank " + std::to_string(r) + " did not arrive within the " +
                         std::to_string(options_.timeout.count()) + " ms timeout (it is alive, still at collective " +
                         at[r] + ")");
    for (int r : ahead)
      findings.push_back("rank " + std::to_string(r) + " is at collective " + at[r] +
                         ", past this one: the ranks issued different collectives");
    if (findings.empty())
      findings.push_back("every other rank is alive and arrived; the cause is " + options_.backend + "'s error");
  } catch (...) {
    if (rank() != 0)
      findings.push_back("rank 0 is gone (the rendezvous store it hosts at " + options_.master_addr + ":" +
                         std::to_string(options_.master_port) + " no longer answers)");
    else
      findings.push_back("the rendezvous store no longer answers (" + current_exception_message() + ")");
  }
  for (size_t i = 0; i < findings.size(); ++i) os << (i ? "; " : "") << findings[i];
  os << " [" << options_.backend << ": " << cause << "]";
  return os.str();
}

namespace {
// Gloo enforces the timeout itself and says more than a bare wait() timeout;
// give it a margin to speak first. NCCL relies on wait()'s timeout.
milliseconds wait_timeout(const GroupOptions& o) {
  return o.backend == "gloo" ? o.timeout + milliseconds(2000) : o.timeout;
}
}  // namespace

void Group::wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  comm(what, [&] { work->wait(wait_timeout(options_)); });
}

void Group::allreduce(at::Tensor& t, ReduceKind op) {
  comm("allreduce", [&] {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = op == ReduceKind::Sum   ? c10d::ReduceOp::SUM
                 : op == ReduceKind::Max ? c10d::ReduceOp::MAX
                                         : c10d::ReduceOp::MIN;
    o.timeout = options_.timeout;
    pg_->allreduce(v, o)->wait(wait_timeout(options_));
  });
}

c10::intrusive_ptr<c10d::Work> Group::allreduce_async(at::Tensor& t) {
  return comm("allreduce", [&] {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = options_.timeout;
    return pg_->allreduce(v, o);
  });
}

c10::intrusive_ptr<c10d::Work> Group::reduce_async(at::Tensor& t, int root) {
  if (root < 0 || root >= size())
    throw std::invalid_argument("root must be a rank in 0.." + std::to_string(size() - 1) + ", got " +
                                std::to_string(root));
  return comm("reduce", [&] {
    std::vector<at::Tensor> v{t};
    c10d::ReduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = options_.timeout;
    return pg_->reduce(v, o);
  });
}

void Group::broadcast(at::Tensor& t, int root) {
  if (root < 0 || root >= size())
    throw std::invalid_argument("root must be a rank in 0.." + std::to_string(size() - 1) + ", got " +
                                std::to_string(root));
  comm("broadcast", [&] {
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = options_.timeout;
    pg_->broadcast(v, o)->wait(wait_timeout(options_));
  });
}

std::vector<at::Tensor> Group::allgather(const at::Tensor& t) {
  return comm("allgather", [&] {
    std::vector<at::Tensor> in{t.contiguous()};
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < size(); ++r) out[0].push_back(at::empty_like(in[0]));
    c10d::AllgatherOptions o;
    o.timeout = options_.timeout;
    pg_->allgather(out, in, o)->wait(wait_timeout(options_));
    return out[0];
  });
}

std::vector<std::vector<uint8_t>> Group::allgather_bytes(const std::vector<uint8_t>& bytes) {
  const auto dev = comm_device();
  at::Tensor len = at::full({1}, static_cast<int64_t>(bytes.size()), at::TensorOptions().dtype(at::kLong).device(dev));
  std::vector<at::Tensor> lens = allgather(len);
  int64_t max_len = 1;
  std::vector<int64_t> sizes;
  for (auto& l : lens) {
    sizes.push_back(l.cpu().item<int64_t>());
    max_len = std::max(max_len, sizes.back());
  }
  at::Tensor buf = at::zeros({max_len}, at::TensorOptions().dtype(at::kByte));
  if (!bytes.empty()) std::memcpy(buf.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  std::vector<at::Tensor> parts = allgather(buf.to(dev));
  std::vector<std::vector<uint8_t>> out;
  for (size_t r = 0; r < parts.size(); ++r) {
    at::Tensor p = parts[r].cpu().contiguous();
    const uint8_t* d = p.data_ptr<uint8_t>();
    out.emplace_back(d, d + sizes[r]);
  }
  return out;
}

void Group::barrier() {
  // A one-element all-reduce: the same on Gloo and NCCL (NCCL's barrier wants device ids).
  at::Tensor t = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(comm_device()));
  allreduce(t);
}

void Group::patient_barrier() {
  if (size() == 1) return;
  comm("patient barrier", [&] {
    // seq_ is the same on every rank here (collectives run in the same order everywhere).
    const std::string arrived = "arrived/" + std::to_string(seq_);
    store_->add(arrived, 1);
    const int n = size();
    // Slower to call a rank dead than diagnose(): this wait may sit beside hours of busy work.
    const auto stall = std::max<milliseconds>(heartbeat_interval_ * 5, milliseconds(3000));
    std::vector<int64_t> beat(n);
    std::vector<Clock::time_point> moved(n, Clock::now());
    for (int r = 0; r < n; ++r) beat[r] = store_->add(key("hb", r), 0);
    auto poll = milliseconds(1);
    while (store_->add(arrived, 0) < n) {
      std::this_thread::sleep_for(poll);
      poll = std::min(poll * 2, milliseconds(100));
      const auto now = Clock::now();
      for (int r = 0; r < n; ++r) {
        if (r == rank()) continue;
        const int64_t b = store_->add(key("hb", r), 0);
        if (b != beat[r]) {
          beat[r] = b;
          moved[r] = now;
        } else if (now - moved[r] > stall) {
          throw std::runtime_error("rank " + std::to_string(r) + "'s heartbeat stopped while the others waited for it");
        }
      }
    }
  });
}

void Group::destroy() {
  if (destroyed_) return;
  stop_heartbeat();
  if (size() > 1 && !broken_ && store_) {
    // Rank 0 hosts the store: let the others leave first, so none of them finds it gone mid-call.
    try {
      store_->set(key("done", rank()), bytes_of("1"));
      if (rank() == 0) {
        const auto deadline = Clock::now() + std::min(options_.timeout, milliseconds(10000));
        std::vector<std::string> keys;
        for (int r = 0; r < size(); ++r) keys.push_back(key("done", r));
        while (!store_->check(keys) && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(10));
      }
    } catch (...) {
      // Leaving anyway.
    }
  }
  destroyed_ = true;
  pg_.reset();
  store_.reset();
  tcp_store_.reset();
}

}  // namespace mentor_kd::dist

#endif  // MENTOR_KD_WITH_C10D
