# SPDX-License-Identifier: BSL-1.0
# A compile-fail test: builds TARGET in BUILD_DIR, which must fail, and the FIRST line of the output that holds a
# compiler error must contain PHRASE (literal text; quotes match any quote a compiler prints). A later error
# holding the phrase is not enough: a user reads the first one.
#   cmake -DBUILD_DIR=<dir> -DTARGET=<target> -DPHRASE=<text> -P first_error.cmake
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
    message(FATAL_ERROR "${TARGET} compiled, but it must not:\n${out}")
endif()
string(REGEX REPLACE "([][.*+?^$(){}|\\\\])" "\\\\\\1" regex "${PHRASE}")
string(REGEX REPLACE "[\"'`]" "." regex "${regex}")
# Lines one by one: a ';' in the output would split a CMake list, so count on newlines instead.
string(REPLACE ";" "," out_lines "${out}")
string(REPLACE "\n" ";" out_lines "${out_lines}")
foreach(line IN LISTS out_lines)
    if(line MATCHES "(^|[ :])(fatal )?error[: ]")
        if(line MATCHES "${regex}")
            message(STATUS "first error: ${line}")
            return()
        endif()
        message(FATAL_ERROR "the first error does not say \"${PHRASE}\":\n  ${line}\n\nwhole output:\n${out}")
    endif()
endforeach()
message(FATAL_ERROR "no error line in the output of ${TARGET}:\n${out}")
