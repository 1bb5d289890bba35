spoke_script_test(test_run_chat python3 ${CMAKE_CURRENT_LIST_DIR}/test_run_chat.py LABELS integration TIMEOUT 120)
if(TEST test_run_chat)
  set_tests_properties(test_run_chat PROPERTIES SKIP_RETURN_CODE 77)
endif()
