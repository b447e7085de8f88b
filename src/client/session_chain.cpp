#include "session_chain.h"

#include <fmt/format.h>

#include "qmeter/core/error.h"

namespace qmeter::client::detail {

SessionChain::SessionChain(const std::vector<StreamRequest>& requests)
    : requests_(&requests), follower_(requests.size(), -1), sent_(requests.size()) {
  for (std::size_t j = 0; j < requests.size(); ++j) {
    const std::int64_t p = requests[j].follows;
    if (p < 0) continue;
    if (p >= static_cast<std::int64_t>(requests.size()) || static_cast<std::size_t>(p) == j)
      throw Error(fmt::format("internal: request {} follows request {} of {}", j, p, requests.size()));
    if (follower_[static_cast<std::size_t>(p)] >= 0)
      throw Error(fmt::format("internal: requests {} and {} both follow request {}", follower_[static_cast<std::size_t>(p)], j, p));
    follower_[static_cast<std::size_t>(p)] = static_cast<std::ptrdiff_t>(j);
  }
}

const StreamRequest& SessionChain::sent(std::size_t i) {
  return sent_[i] ? *sent_[i] : (*requests_)[i];
}

StreamRequest SessionChain::next_turn(std::size_t i, const std::string& reply) {
  const std::size_t j = static_cast<std::size_t>(follower_[i]);
  const StreamRequest& prev = sent(i);
  StreamRequest next = (*requests_)[j];
  // Chat: the history as messages, the previous turn's own messages (a bare prompt is one user
  // message), its reply, then this turn's new messages.
  std::vector<ChatTurn> history = prev.messages;
  if (history.empty()) history.push_back({"user", prev.prompt});
  history.push_back({"assistant", reply});
  if (next.messages.empty()) history.push_back({"user", next.prompt});
  else history.insert(history.end(), next.messages.begin(), next.messages.end());
  next.messages = std::move(history);
  // Completions: the text so far, the reply, a blank line, the new user text.
  next.prompt = prev.prompt + reply + "\n\n" + (*requests_)[j].prompt;
  next.expected_prompt_tokens = -1;  // the history's length is known only to the server
  sent_[i].reset();  // only the latest turn of a conversation is needed from here on
  sent_[j] = std::move(next);
  return *sent_[j];
}

}  // namespace qmeter::client::detail
