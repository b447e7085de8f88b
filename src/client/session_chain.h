#pragma once
// The multi-turn part of StreamingClient::run: which request follows which, and the request that
// is actually sent for a later turn (the history with the real replies, built when the previous
// turn ends). Closed loop within a conversation, open loop across conversations.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "qmeter/client/streaming_client.h"

namespace qmeter::client::detail {

class SessionChain {
 public:
  explicit SessionChain(const std::vector<StreamRequest>& requests);

  // True for a later turn: it is not in the initial send order, it is released by its predecessor.
  bool waits_for_previous(std::size_t i) const { return (*requests_)[i].follows >= 0; }
  // The later turn that request i releases, if any.
  std::optional<std::size_t> follower(std::size_t i) const {
    return follower_[i] < 0 ? std::nullopt : std::optional<std::size_t>(static_cast<std::size_t>(follower_[i]));
  }
  // Request i ended successfully with `reply`: the request its follower j sends (the full history).
  // Must be called in turn order (j's predecessor first).
  StreamRequest next_turn(std::size_t i, const std::string& reply);

 private:
  // The full request sent for i (only session requests; first turns as given).
  const StreamRequest& sent(std::size_t i);
  const std::vector<StreamRequest>* requests_;
  std::vector<std::ptrdiff_t> follower_;
  std::vector<std::optional<StreamRequest>> sent_;  // later turns, as built
};

}  // namespace qmeter::client::detail
