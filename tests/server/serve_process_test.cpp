// `ponder serve` as a process: the official openai npm SDK as its client and its web page in
// headless Chromium (tests/node: versions pinned in package-lock.json, installed by
// scripts/install-deps.sh), and SIGTERM letting a running stream finish before the server exits.
#include <httplib.h>
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <regex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "support/run_cli.h"
#include "support/shared_data.h"
#include "support/temp_path.h"

namespace ponder {
namespace {

using ::ponder::testing::shared_path;
using ::ponder::testing::slurp;
using ::ponder::testing::temp_path;

// A `ponder serve` child process on a free port.
struct ServeProcess {
  explicit ServeProcess(const std::vector<std::string>& extra) {
    log = temp_path("serve_" + std::to_string(counter++) + ".log");
    std::vector<std::string> args = {std::string(PONDER_BINARY_DIR) + "/ponder", "serve", "--port", "0", "-t", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid = fork();
    if (pid == 0) {
      if (!std::freopen(log.c_str(), "w", stderr)) _exit(126);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    // Wait for the port, then for the model.
    const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
    for (int i = 0; i < 600 && port == 0; ++i) {
      std::smatch m;
      const std::string text = slurp(log);
      if (std::regex_search(text, m, listening)) port = std::stoi(m[1]);
      else std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (int i = 0; i < 600 && port != 0; ++i) {
      httplib::Client c("127.0.0.1", port);
      auto r = c.Get("/health");
      if (r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "ponder serve did not come up:\n" << slurp(log);
  }
  // SIGTERM, then the exit status (-1 if it did not exit within `seconds`).
  int stop(int seconds = 20) {
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < seconds * 20; ++i) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
    return -1;
  }
  ~ServeProcess() { stop(1); }

  static inline int counter = 0;
  std::string log;
  pid_t pid = -1;
  int port = 0;
};

// Skips (fails in CI) when a test client is not installed.
#define REQUIRE_CLIENT(path, what)                                                                 \
  do {                                                                                             \
    if (std::system("node --version > /dev/null 2>&1") != 0 || !std::filesystem::exists(path)) {   \
      const std::string why = std::string(what) + " is not installed (scripts/install-deps.sh)";   \
      if (::ponder::testing::shared_is_required()) FAIL() << why;                                  \
      GTEST_SKIP() << why;                                                                         \
    }                                                                                              \
  } while (0)

const std::string kClients = std::string(PONDER_SOURCE_DIR) + "/tests/node";

TEST(ServeProcess, TheOfficialOpenAiSdkAsClient) {
  PONDER_REQUIRE_SHARED("models/tiny-r1distill-random.gguf");
  REQUIRE_CLIENT(kClients + "/node_modules/openai/package.json", "the openai SDK (node, tests/node/node_modules)");
  const std::string& dir = kClients;
  ServeProcess s({"-m", shared_path("models/tiny-r1distill-random.gguf"), "--api-key", "test-key", "--alias", "tiny-r1",
                  "--ctx", "512", "--kv-blocks", "1024"});
  ASSERT_NE(s.port, 0);
  const std::string out = temp_path("node_out.txt");
  const std::string cmd = "cd '" + dir + "' && PONDER_URL=http://127.0.0.1:" + std::to_string(s.port) +
                          "/v1 PONDER_KEY=test-key node --test client_test.mjs > '" + out + "' 2>&1";
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(out) << "\nserver log:\n" << slurp(s.log);
  EXPECT_NE(slurp(out).find("# pass 8"), std::string::npos) << slurp(out);
  EXPECT_EQ(s.stop(), 0) << slurp(s.log);
}

TEST(ServeProcess, TheWebPageInHeadlessChromium) {
  PONDER_REQUIRE_SHARED("models/tiny-r1distill-random.gguf");
  REQUIRE_CLIENT(kClients + "/node_modules/playwright-core/package.json", "playwright-core (node, tests/node/node_modules)");
  REQUIRE_CLIENT("/usr/bin/chromium", "chromium");
  ServeProcess s({"-m", shared_path("models/tiny-r1distill-random.gguf"), "--api-key", "k", "--ctx", "512"});
  ASSERT_NE(s.port, 0);
  const std::string out = temp_path("page_out.txt"), shot = temp_path("page.png");
  const std::string cmd = "cd '" + kClients + "' && PONDER_URL=http://127.0.0.1:" + std::to_string(s.port) +
                          " PONDER_KEY=k PONDER_SCREENSHOT='" + shot + "' node --test page_test.mjs > '" + out + "' 2>&1";
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(out) << "\nserver log:\n" << slurp(s.log);
  // The screenshot: a PNG of the page's width (1200 pixels).
  const std::string png = slurp(shot);
  ASSERT_GT(png.size(), 24u) << "no screenshot";
  EXPECT_EQ(png.substr(1, 3), "PNG");
  const auto be32 = [&](size_t at) {
    return uint32_t(uint8_t(png[at])) << 24 | uint32_t(uint8_t(png[at + 1])) << 16 | uint32_t(uint8_t(png[at + 2])) << 8 |
           uint32_t(uint8_t(png[at + 3]));
  };
  EXPECT_EQ(be32(16), 1200u) << "IHDR width";
  EXPECT_GE(be32(20), 800u) << "IHDR height";
  if (const char* keep = std::getenv("PONDER_KEEP_SCREENSHOT")) std::filesystem::copy_file(shot, keep, std::filesystem::copy_options::overwrite_existing);
}

TEST(ServeProcess, SigtermLetsARunningStreamFinishThenExits) {
  PONDER_REQUIRE_SHARED("models/tiny-r1distill-random.gguf");
  ServeProcess s({"-m", shared_path("models/tiny-r1distill-random.gguf"), "--ctx", "512", "--drain", "20"});
  ASSERT_NE(s.port, 0);
  std::string body;
  int status = 0;
  std::thread client([&] {
    httplib::Client c("127.0.0.1", s.port);
    c.set_read_timeout(60, 0);
    auto r = c.Post("/v1/chat/completions",
                    R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":300,"stream":true,"seed":1})", "application/json");
    if (r) {
      status = r->status;
      body = r->body;
    }
  });
  // Once it streams, ask the server to stop.
  for (int i = 0; i < 400; ++i) {
    httplib::Client c("127.0.0.1", s.port);
    auto m = c.Get("/metrics");
    if (m && m->body.find("ponder_requests_running 1") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(s.pid, SIGTERM);
  client.join();
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(body.ends_with("data: [DONE]\n\n")) << "the stream was cut: " << body.substr(body.size() > 300 ? body.size() - 300 : 0);
  EXPECT_NE(body.find("\"finish_reason\":\"length\""), std::string::npos) << "all 300 tokens";
  EXPECT_EQ(s.stop(), 0) << slurp(s.log);
  EXPECT_NE(slurp(s.log).find("ponder: stopped"), std::string::npos) << slurp(s.log);
}

}  // namespace
}  // namespace ponder
