// The Slurm client's parsers and sbatch command line, against the text Slurm 22.05 prints.
#include <gtest/gtest.h>

#include <ctime>

#include "qmeter/core/error.h"
#include "slurm/slurm_client.h"

using namespace qmeter::exec::slurm;

namespace {

std::int64_t local_ms(int y, int mo, int d, int h, int mi, int s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  tm.tm_isdst = -1;
  return static_cast<std::int64_t>(std::mktime(&tm)) * 1000;
}

}  // namespace

TEST(SlurmParse, TaskRangesExpandWithAndWithoutThrottle) {
  EXPECT_EQ(parse_task_range("3"), (std::vector<int>{3}));
  EXPECT_EQ(parse_task_range("0-3%2"), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(parse_task_range("1,4-5,9"), (std::vector<int>{1, 4, 5, 9}));
  EXPECT_EQ(parse_task_range("[2-3]"), (std::vector<int>{2, 3}));
  EXPECT_TRUE(parse_task_range("x-y").empty());
}

TEST(SlurmParse, TimesAreLocalAndUnknownIsZero) {
  EXPECT_EQ(parse_slurm_time("2026-12-06T04:30:05"), local_ms(2026, 12, 6, 4, 30, 5));
  EXPECT_EQ(parse_slurm_time("Unknown"), 0);
  EXPECT_EQ(parse_slurm_time("None"), 0);
  EXPECT_EQ(parse_slurm_time(""), 0);
}

TEST(SlurmParse, ScontrolRecordsGiveOneStatePerTask) {
  const std::string text =
      "JobId=12 ArrayJobId=10 ArrayTaskId=2 JobName=qmeter-s-1 UserId=root(0) JobState=COMPLETED Reason=None "
      "Dependency=(null) ExitCode=0:0 RunTime=00:00:07 SubmitTime=2026-12-06T04:30:00 StartTime=2026-12-06T04:30:01 "
      "EndTime=2026-12-06T04:30:08 Partition=debug NodeList=q2 BatchHost=q2 Command=/tmp/a b/job.sh\n"
      "JobId=13 ArrayJobId=10 ArrayTaskId=3 JobState=CANCELLED Reason=None ExitCode=0:15 RunTime=00:00:02 "
      "SubmitTime=2026-12-06T04:30:00 StartTime=2026-12-06T04:30:01 EndTime=2026-12-06T04:30:03 NodeList=q1\n"
      "JobId=10 ArrayJobId=10 ArrayTaskId=4-6%2 JobState=PENDING Reason=JobArrayTaskLimit ExitCode=0:0 "
      "RunTime=00:00:00 SubmitTime=2026-12-06T04:30:00 StartTime=Unknown EndTime=Unknown NodeList=(null)\n"
      "JobId=14 ArrayJobId=10 ArrayTaskId=1 JobState=NODE_FAIL Reason=NodeDown ExitCode=0:0 NodeList=q2 "
      "SubmitTime=2026-12-06T04:30:00 StartTime=2026-12-06T04:30:01 EndTime=2026-12-06T04:30:20\n";
  const auto tasks = parse_scontrol_jobs(text);
  ASSERT_EQ(tasks.size(), 6u);
  EXPECT_EQ(tasks[0].job_id, "10");
  EXPECT_EQ(tasks[0].task_id, 2);
  EXPECT_EQ(tasks[0].state, "COMPLETED");
  EXPECT_EQ(tasks[0].node, "q2");
  EXPECT_EQ(tasks[0].exit_code, "0:0");
  EXPECT_EQ(tasks[0].reason, "");
  EXPECT_EQ(tasks[0].start_unix_ms, local_ms(2026, 12, 6, 4, 30, 1));
  EXPECT_EQ(tasks[0].end_unix_ms, local_ms(2026, 12, 6, 4, 30, 8));
  EXPECT_EQ(tasks[1].state, "CANCELLED");
  EXPECT_EQ(tasks[1].exit_code, "0:15");
  for (int i = 2; i < 5; ++i) {
    EXPECT_EQ(tasks[static_cast<std::size_t>(i)].task_id, i + 2);
    EXPECT_EQ(tasks[static_cast<std::size_t>(i)].state, "PENDING");
    EXPECT_EQ(tasks[static_cast<std::size_t>(i)].node, "");
    EXPECT_EQ(tasks[static_cast<std::size_t>(i)].reason, "JobArrayTaskLimit");
    EXPECT_EQ(tasks[static_cast<std::size_t>(i)].start_unix_ms, 0);
  }
  EXPECT_EQ(tasks[5].state, "NODE_FAIL");
  EXPECT_EQ(tasks[5].reason, "NodeDown");
  EXPECT_FALSE(is_live_state("NODE_FAIL"));
  EXPECT_FALSE(is_live_state("COMPLETED"));
  EXPECT_FALSE(is_live_state("CANCELLED"));
  EXPECT_FALSE(is_live_state("OUT_OF_MEMORY"));
  EXPECT_TRUE(is_live_state("PENDING"));
  EXPECT_TRUE(is_live_state("RUNNING"));
  EXPECT_TRUE(is_live_state("COMPLETING"));
  EXPECT_TRUE(is_live_state("REQUEUED"));
}

TEST(SlurmParse, SacctLinesKeepTheStateWordAndTheTask) {
  const std::string text =
      "20_0|COMPLETED|0:0|q1|2026-12-06T05:00:00|2026-12-06T05:00:01|2026-12-06T05:00:09|00:00:08|None\n"
      "20_1|CANCELLED by 0|0:15|q2|2026-12-06T05:00:00|2026-12-06T05:00:01|2026-12-06T05:00:04|00:00:03|None\n"
      "20_[2-3]|PENDING|0:0|None assigned|2026-12-06T05:00:00|Unknown|Unknown|00:00:00|Priority\n";
  const auto tasks = parse_sacct(text);
  ASSERT_EQ(tasks.size(), 4u);
  EXPECT_EQ(tasks[0].job_id, "20");
  EXPECT_EQ(tasks[0].task_id, 0);
  EXPECT_EQ(tasks[0].node, "q1");
  EXPECT_EQ(tasks[1].state, "CANCELLED");
  EXPECT_EQ(tasks[1].exit_code, "0:15");
  EXPECT_EQ(tasks[2].task_id, 2);
  EXPECT_EQ(tasks[3].task_id, 3);
  EXPECT_EQ(tasks[3].state, "PENDING");
  EXPECT_EQ(tasks[3].reason, "Priority");
  EXPECT_EQ(tasks[3].node, "");
}

TEST(SlurmParse, SbatchArgvAsksForTheRunsResources) {
  ArraySubmission s;
  s.job_name = "qmeter-study-1";
  s.script_path = "/r/jobs/1.sh";
  s.chdir = "/work";
  s.log_pattern = "/r/logs/%A_%a.log";
  s.tasks = 8;
  s.max_parallel = 3;
  s.partition = "h100";
  s.account = "lab";
  s.time_limit = "02:00:00";
  s.gpus_per_task = 4;
  s.extra_args = {"--qos=high"};
  const std::vector<std::string> want = {"sbatch",          "--parsable",        "--job-name=qmeter-study-1",
                                         "--array=0-7%3",   "--partition=h100",  "--account=lab",
                                         "--time=02:00:00", "--gres=gpu:4",      "--no-requeue",
                                         "--ntasks=1",      "--chdir=/work",     "--output=/r/logs/%A_%a.log",
                                         "--qos=high",      "/r/jobs/1.sh"};
  EXPECT_EQ(sbatch_argv(s, false), want);
  const auto test_only = sbatch_argv(s, true);
  EXPECT_EQ(test_only[2], "--test-only");
  ArraySubmission cpu;
  cpu.job_name = "j";
  cpu.script_path = "x.sh";
  cpu.tasks = 1;
  cpu.cpus_per_task = 2;
  cpu.requeue = true;
  EXPECT_EQ(sbatch_argv(cpu, false),
            (std::vector<std::string>{"sbatch", "--parsable", "--job-name=j", "--array=0-0", "--cpus-per-task=2",
                                      "--requeue", "--ntasks=1", "x.sh"}));
}

TEST(SlurmParse, ARefusalNamesTheOptionItIsAbout) {
  EXPECT_EQ(refused_option("sbatch: error: invalid partition specified: nosuch\n"
                           "sbatch: error: Batch job submission failed: Invalid partition name specified"),
            "--partition");
  EXPECT_EQ(refused_option("sbatch: error: Batch job submission failed: Invalid account or account/partition "
                           "combination specified"),
            "--partition");  // Slurm names both; the partition is checked first
  EXPECT_EQ(refused_option("sbatch: error: Batch job submission failed: Invalid account specified"), "--account");
  EXPECT_EQ(refused_option("sbatch: error: Batch job submission failed: Requested time limit is invalid"), "--time");
  EXPECT_EQ(refused_option("sbatch: error: Batch job submission failed: Invalid qos specification"),
            "--sbatch-arg (qos)");
  EXPECT_EQ(refused_option("sbatch: error: something else"), "");
}
