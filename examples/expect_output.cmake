# SPDX-License-Identifier: BSL-1.0
# Runs an example and checks its output, so the example itself needs no self-checks:
#   cmake -DEXE=<exe> [-DEMULATOR=<wine-exec.sh>] -DEXPECT=<regex;regex...> -P expect_output.cmake
# Passes when the example exits with 0 and its output matches every regex (PASS_REGULAR_EXPRESSION alone would
# ignore the exit code).
execute_process(COMMAND ${EMULATOR} "${EXE}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(err)
    message("stderr:\n${err}")
endif()
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "expect_output: ${EXE} exited with ${rc}")
endif()
foreach(re IN LISTS EXPECT)
    if(NOT out MATCHES "${re}")
        message(FATAL_ERROR "expect_output: the output does not match \"${re}\"")
    endif()
endforeach()
