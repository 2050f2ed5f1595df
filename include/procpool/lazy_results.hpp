// SPDX-License-Identifier: BSL-1.0
// procpool/lazy_results.hpp: the input ranges that map_unordered, imap and imap_unordered return: results of chunks
// as they complete (or in input order), pulling more input only while fewer than a bound of items are in flight.
#ifndef PROCPOOL_LAZY_RESULTS_HPP
#define PROCPOOL_LAZY_RESULTS_HPP

#include <procpool/config.hpp>
#include <procpool/future.hpp>
#include <procpool/progress.hpp>

#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

/// The outcome of one item of map_outcomes (or of `.outcomes()` of a lazy map): its position in the input, and its
/// value or the exception it ended with (the task's own, or worker_died / task_timeout / pool_closed for the chunk
/// that carried it).
template <class R>
struct item_outcome {
    std::size_t index = 0;                          ///< position of the item in the input range
    std::optional<detail::stored_t<R>> value;       ///< the result when the item succeeded (void tasks: an empty tag)
    std::exception_ptr error;                       ///< the failure otherwise
    /// Whether the item succeeded.
    [[nodiscard]] bool ok() const noexcept { return !error; }
    /// The value. \throws the item's exception when it failed.
    decltype(auto) get() & {
        if (error) std::rethrow_exception(error);
        if constexpr (!std::is_void_v<R>) return (*value);
    }
};

namespace detail {

template <class R>
using chunk_ptr = std::shared_ptr<batch_state<R>>;

/// Where a lazy map's chunks come from: called with at most how many items the next chunk may hold, it submits
/// that chunk (encoding input pulled now) and returns it, or null once the input is exhausted.
template <class R>
using chunk_source = std::function<chunk_ptr<R>(std::size_t max_items)>;

/// Item `k` of finished chunk `c`: its value (moved out of the chunk) or its error (the chunk's, else the item's).
template <class R>
item_outcome<R> take_outcome(batch_state<R>& c, std::size_t k) {
    item_outcome<R> o;
    o.index = c.first_index + k;
    if (c.error) o.error = c.error;
    else if (!c.errors.empty() && c.errors[k]) o.error = c.errors[k];
    else o.value = std::move(c.values[k]);
    return o;
}

} // namespace detail

/// Results of map_unordered, imap and imap_unordered: an input range that drives the pool as it advances.
///
/// The input is sent in chunks; a new chunk is pulled from the input only while the items in flight (pulled and not
/// yet yielded to the caller) stay within max_in_flight(), so that an input of any length, or an endless one, runs
/// in bounded memory (map_unordered sends everything at once: its bound is unlimited). Ordered (imap): results in
/// input order. Unordered: each chunk's results as soon as the chunk completes.
///
/// Iterating the range yields values: dereferencing the iterator at a failed item throws that item's exception, so a
/// range-for ends there, while a loop that catches it and advances goes on with the next item. outcomes() yields
/// every item's item_outcome instead (index, value or error) and never throws for an item.
template <class R>
class lazy_results {
public:
    /// An iterator over values (Outcomes = false) or item_outcome objects (true). Advancing waits for the next
    /// result, driving the pool.
    template <bool Outcomes>
    class basic_iterator {
    public:
        using value_type = std::conditional_t<Outcomes, item_outcome<R>, detail::stored_t<R>>;
        using difference_type = std::ptrdiff_t;
        basic_iterator() = default;
        explicit basic_iterator(lazy_results* r) : r_(r) { advance(); }
        /// The item's value (or outcome). \throws the item's exception when it failed and this iterates values;
        /// advancing goes on with the next item.
        value_type& operator*() const {
            if constexpr (Outcomes) return *r_->current_;
            else return r_->current_->get();
        }
        /// As operator*.
        value_type* operator->() const { return &**this; }
        basic_iterator& operator++() {
            advance();
            return *this;
        }
        void operator++(int) { advance(); }
        bool operator==(std::default_sentinel_t) const { return r_ == nullptr; }

    private:
        void advance() {
            if (!r_->next()) r_ = nullptr;
        }
        lazy_results* r_ = nullptr;
    };
    /// The iterator over values.
    using iterator = basic_iterator<false>;

    /// The same iteration as item_outcome objects: every item, failed or not, with its input index.
    class outcome_view {
    public:
        /// The iterator over outcomes.
        using iterator = basic_iterator<true>;
        /// Waits for the first outcome.
        iterator begin() { return iterator(&target()); }
        /// The end: every item has been yielded.
        std::default_sentinel_t end() { return {}; }

    private:
        friend class lazy_results;
        explicit outcome_view(lazy_results* r) : r_(r) {}
        explicit outcome_view(lazy_results&& r) : owned_(std::move(r)) {}
        lazy_results& target() { return owned_ ? *owned_ : *r_; }
        lazy_results* r_ = nullptr;
        std::optional<lazy_results> owned_; // outcomes() on a temporary, as in a range-for
    };

    /// Waits for the first result.
    iterator begin() {
        static_assert(!std::is_void_v<R>, "procpool: this task returns nothing, so there are no values to iterate. "
                                          "Iterate .outcomes() to see each item's success or failure, or use map. ");
        return iterator(this);
    }
    /// The end: every item has been yielded.
    std::default_sentinel_t end() { return {}; }

    /// The iteration as item_outcome objects, which never throws for a failed item:
    /// `for (auto& o : pool.imap_unordered<f>(xs).outcomes()) if (!o.ok()) log(o.index);`
    [[nodiscard]] outcome_view outcomes() & { return outcome_view(this); }
    /// On a temporary, as in a range-for: the view takes it over.
    [[nodiscard]] outcome_view outcomes() && { return outcome_view(std::move(*this)); }

    /// Items pulled from the input and not yet yielded: sent, running, or done and waiting to be taken.
    [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
    /// The most items ever in flight at once (max_in_flight, or unlimited for map_unordered).
    [[nodiscard]] std::size_t max_in_flight() const noexcept { return limit_; }

    /// \cond INTERNAL
    lazy_results(detail::chunk_source<R> source, bool ordered, std::size_t chunksize, std::size_t limit,
                 std::size_t total, progress_callback on_progress)
        : source_(std::move(source)), ordered_(ordered), chunksize_(chunksize == 0 ? 1 : chunksize),
          limit_(limit < chunksize_ ? chunksize_ : limit), total_(total), on_progress_(std::move(on_progress)) {}
    /// \endcond

private:
    /// Pulls chunks while the bound allows: at most limit_ items between the input and the caller.
    void refill() {
        while (!exhausted_ && in_flight_ < limit_) {
            const std::size_t room = limit_ - in_flight_;
            if (room < chunksize_ && in_flight_ > 0) return; // a full chunk later rather than a small one now
            auto c = source_(room < chunksize_ ? room : chunksize_);
            if (!c) {
                exhausted_ = true;
                return;
            }
            in_flight_ += c->values.size();
            if (ordered_) {
                order_.push_back(std::move(c));
                continue;
            }
            const std::size_t tag = detail::take_slot(slots_, free_tags_);
            slots_[tag] = c;
            if (!queue_) queue_ = std::make_unique<detail::completion_queue>();
            queue_->watch(std::move(c), tag);
        }
    }

    /// The next chunk to take: the oldest in input order, or the first to complete. Null at the end.
    detail::chunk_ptr<R> take_chunk() {
        if (ordered_) {
            if (order_.empty()) return nullptr;
            auto c = std::move(order_.front());
            order_.pop_front();
            detail::wait_state(*c);
            return c;
        }
        if (!queue_) return nullptr;
        auto tag = queue_->next();
        if (!tag) return nullptr;
        auto c = std::move(slots_[*tag]);
        free_tags_.push_back(*tag); // the queue no longer holds it: the tag may name another chunk
        return c;
    }

    bool next() {
        if (current_) {
            current_.reset();
            --in_flight_;
        }
        if (!started_) {
            started_ = true;
            if (on_progress_ && total_) on_progress_(0, total_);
        }
        refill();
        if (ready_.empty()) {
            auto c = take_chunk();
            if (!c) return false;
            const std::size_t n = c->values.size();
            for (std::size_t k = 0; k < n; ++k) ready_.push_back(detail::take_outcome(*c, k));
            done_ += n;
            if (on_progress_ && total_) on_progress_(done_, total_);
            if (n == 0) return next(); // an empty chunk (never sent by the pool, but harmless)
        }
        current_.emplace(std::move(ready_.front()));
        ready_.pop_front();
        return true;
    }

    detail::chunk_source<R> source_;
    bool ordered_ = false;
    std::size_t chunksize_ = 1;
    std::size_t limit_ = 0;
    std::size_t total_ = 0; // items, when known (else 0: no progress calls)
    progress_callback on_progress_;
    bool started_ = false;
    bool exhausted_ = false;
    std::size_t in_flight_ = 0, done_ = 0;
    std::deque<detail::chunk_ptr<R>> order_;          // ordered: submitted chunks, in input order
    std::unique_ptr<detail::completion_queue> queue_; // unordered: the chunks in completion order, by tag
    std::vector<detail::chunk_ptr<R>> slots_;         // unordered: chunk by tag, while in the queue
    std::vector<std::size_t> free_tags_;              // tags whose chunks were taken: reused, so the tags stay few
    std::deque<item_outcome<R>> ready_;               // outcomes of the chunk being yielded
    std::optional<item_outcome<R>> current_;
};

/// The results of map_unordered: a lazy_results whose input was all sent when map_unordered was called.
template <class R>
using unordered_results = lazy_results<R>;

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_LAZY_RESULTS_HPP
