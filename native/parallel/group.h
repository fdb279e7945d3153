// A process group on libtorch's c10d: TCPStore rendezvous, ProcessGroupGloo
// on CPU or ProcessGroupNCCL on CUDA, with the torchrun contract's fields.
//
// What it adds to c10d:
// - Order. Collectives must be issued in the same order on every rank, but JS
//   calls run on a libuv pool whose threads may start them in any order. Each
//   call takes a ticket on the JS thread (call order) and its worker waits for
//   its turn, so issue order == JS call order.
// - Named failures. Every logical collective publishes "N what" to the store
//   before it starts, and a heartbeat thread bumps a per-rank counter. When a
//   collective fails (peer closed, Gloo timeout), the group reads both and
//   throws an error naming the ranks that did not arrive or stopped beating,
//   instead of Gloo's "Connection closed by peer [127.0.0.1]:40123". The group
//   is broken afterwards: later calls fail at once with the same message.
//
// Only compiled when this Torch has c10d with Gloo (MENTOR_KD_WITH_C10D).
#pragma once
#ifdef MENTOR_KD_WITH_C10D

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#endif

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mentor_kd::dist {

// What ProcessGroupGloo/NCCL are: ProcessGroup itself up to torch 1.13, a
// c10d::Backend (the same collective methods) from torch 2.0 on.
#if TORCH_VERSION_MAJOR >= 2
using CommBackend = c10d::Backend;
#else
using CommBackend = c10d::ProcessGroup;
#endif

struct GroupOptions {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string backend = "gloo";  // gloo | nccl
  std::string socket_ifname;     // Gloo's interfaces, comma-separated (GLOO_SOCKET_IFNAME); "" = choose
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};  // rendezvous and every collective
  void validate() const;
};

// A communication failure (as opposed to a local error inside a collective call).
class CommError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ReduceKind { Sum, Max, Min };

class Group {
 public:
  // Blocks until every rank has joined or the timeout has passed (error names the missing ranks).
  static std::shared_ptr<Group> create(const GroupOptions& options);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return options_.rank; }
  int size() const { return options_.world_size; }
  const std::string& backend() const { return options_.backend; }
  const GroupOptions& options() const { return options_; }
  // Where the backend's connections go, in words ("gloo on 10.0.0.2 (the local address that
  // routes to MASTER_ADDR=10.0.0.1)"); "nccl" for NCCL.
  const std::string& transport() const { return transport_; }
  // Where collective buffers live: cpu for gloo, cuda:LOCAL_RANK for nccl.
  at::Device comm_device() const;

  // Call order on the JS thread; the worker then holds a Turn for its whole collective.
  uint64_t take_ticket() { return next_ticket_.fetch_add(1); }
  class Turn {
   public:
    Turn(Group& g, uint64_t ticket);
    ~Turn();
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;

   private:
    Group& g_;
  };

  // Runs one logical collective: publishes progress, runs fn, and on a
  // communication failure diagnoses the missing ranks and throws naming them.
  void run(const std::string& what, const std::function<void()>& fn);

  // c10d operations, for use inside run(). Tensors must be on comm_device().
  void allreduce(at::Tensor& t, ReduceKind op = ReduceKind::Sum);
  c10::intrusive_ptr<c10d::Work> allreduce_async(at::Tensor& t);
  // Σ over ranks into rank root's t (the others' t is scratch). Gloo in libtorch 1.13 has no
  // reduce_scatter; sharded gradients (zero2) reduce each owner's part of a bucket with this.
  c10::intrusive_ptr<c10d::Work> reduce_async(at::Tensor& t, int root);
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what);
  void broadcast(at::Tensor& t, int root);
  // Same shape on every rank; returns one tensor per rank.
  std::vector<at::Tensor> allgather(const at::Tensor& t);
  // Byte strings of any length; returns one per rank.
  std::vector<std::vector<uint8_t>> allgather_bytes(const std::vector<uint8_t>& bytes);
  void barrier();
  // A barrier for work of unbounded length on some ranks (rank 0 writing a report or calling a
  // teacher API for hours while the others wait). It meets through the store, not the backend, so
  // no collective timeout applies: it waits as long as every rank not yet arrived is alive
  // (its heartbeat moves) and throws, naming the rank, when one stops beating.
  void patient_barrier();

  // Counts collectives issued inside the current run() (0: a failure was local).
  uint64_t seq() const { return seq_; }
  bool broken() const { return broken_; }
  // Leaves the group: stops the heartbeat; rank 0 waits (bounded) for the
  // others to leave before closing the store they rendezvous through.
  void destroy();

 private:
  explicit Group(GroupOptions options);
  void rendezvous();
  void start_heartbeat();
  void stop_heartbeat();
  std::string diagnose(uint64_t seq, const std::string& what, const std::string& cause);
  std::string key(const std::string& kind, int rank) const;
  void check_usable() const;
  template <typename Fn>
  auto comm(const char* what, Fn&& fn) -> decltype(fn());

  GroupOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;      // prefixed view of the TCPStore
  c10::intrusive_ptr<c10d::Store> tcp_store_;  // rank 0 hosts its server
  c10::intrusive_ptr<CommBackend> pg_;
  std::string prefix_;
  std::string transport_;

  std::atomic<uint64_t> next_ticket_{0};
  uint64_t serving_ = 0;
  std::mutex turn_mutex_;
  std::condition_variable turn_cv_;

  uint64_t seq_ = 0;         // logical collectives started by this rank
  uint64_t run_issued_ = 0;  // c10d ops issued inside the current run()
  std::atomic<bool> broken_{false};
  std::string broken_message_;
  bool destroyed_ = false;

  std::chrono::milliseconds heartbeat_interval_{1000};
  std::thread heartbeat_;
  std::mutex heartbeat_mutex_;
  std::condition_variable heartbeat_cv_;
  bool heartbeat_stop_ = false;
};

}  // namespace mentor_kd::dist

#endif  // MENTOR_KD_WITH_C10D
