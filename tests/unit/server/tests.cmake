spoke_test(test_admit ${CMAKE_CURRENT_LIST_DIR}/test_admit.c LABELS unit TIMEOUT 60)
spoke_test(test_request ${CMAKE_CURRENT_LIST_DIR}/test_request.c LABELS unit TIMEOUT 60)
spoke_test(test_gate ${CMAKE_CURRENT_LIST_DIR}/test_gate.c LABELS unit TIMEOUT 60)
spoke_test(test_tools ${CMAKE_CURRENT_LIST_DIR}/test_tools.c LABELS unit TIMEOUT 60)
